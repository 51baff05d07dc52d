"""Media work around the ffmpeg binary shipped by the ``imageio-ffmpeg`` wheel.

Pure functions, no models: generate sample participant recordings, probe files,
build and run the command that merges individual recordings into one playable
``transcoded.mp4``, and cut a poster frame. There is no ffprobe in the wheel, so
:func:`probe` parses the stream summary ``ffmpeg -i`` prints on stderr.

ffmpeg always runs through ``recordings.ffmpeg.run``: allowed input formats
and protocols only, a timeout scaled to the media's length and resource limits.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import ffmpeg
from .ffmpeg import MediaError, base_command, ffmpeg_exe, input_args, path_arg

__all__ = ["MediaError", "MediaInfo", "NotMedia", "ffmpeg_exe", "make_composite", "make_poster",
           "probe"]  # fmt: skip

# Probing reads the head of the file (and the index at the end of an MP4), not
# the whole file; a minute is ample even on a loaded machine.
PROBE_LIMITS = ffmpeg.Limits(timeout=60, output_bytes=0)
POSTER_LIMITS = ffmpeg.Limits(timeout=120, output_bytes=64 * 1024 * 1024)
# bench/README.md: a 3-participant 720p composite encodes at ~5x real time on
# 2 CPUs; 2 s per second of media leaves 10x room for 16 inputs and a busy box.
COMPOSITE_SECONDS_PER_SECOND = 2.0
COMPOSITE_BASE_SECONDS = 120
# The composite is ~1-3 Mbit/s (CRF 23, 720p); 16 Mbit/s is far above any real one.
COMPOSITE_BYTES_PER_SECOND = 2 * 1024 * 1024
# Copying packets to the null muxer (no decoding) runs at disk speed.
MEASURE_BYTES_PER_SECOND = 10 * 1024 * 1024

# Names for what ffmpeg recognised but the allowlist refuses, and for a few
# kinds of file it does not recognise at all (told by their first bytes).
KNOWN_FORMATS = {
    "hls": "an HLS playlist", "dash": "a DASH manifest", "concat": "a concat list",
    "imf": "an IMF composition", "png_pipe": "a PNG image", "jpeg_pipe": "a JPEG image",
    "gif": "a GIF image", "webp_pipe": "a WebP image", "svg_pipe": "an SVG image",
    "image2": "an image", "tty": "a text file", "srt": "subtitles", "webvtt": "subtitles",
}  # fmt: skip
MAGIC = (
    (b"<!doctype html", "an HTML page"), (b"<html", "an HTML page"), (b"<script", "an HTML page"),
    (b"pk\x03\x04", "a ZIP archive"), (b"\x1f\x8b", "a gzip archive"), (b"%pdf", "a PDF document"),
    (b"<?xml", "an XML document"), (b"<svg", "an SVG image"), (b"#extm3u", "an HLS playlist"),
)  # fmt: skip


class NotMedia(MediaError):
    """The file is not a recording in one of the allowed formats. ``received``
    names what it looks like instead (e.g. "an HLS playlist (hls)")."""

    def __init__(self, message: str, received: str):
        super().__init__(message)
        self.received = received


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    width: int | None = None
    height: int | None = None
    has_video: bool = False
    has_audio: bool = False
    video_codec: str | None = None
    audio_codec: str | None = None
    format_name: str = ""  # ffmpeg's demuxer, one of ffmpeg.MEDIA_FORMATS

    @property
    def content_type(self) -> str:
        """The type the portal serves the file as, decided from the probe."""
        kind = "video" if self.has_video else "audio"
        if self.format_name.startswith("mov"):
            return f"{kind}/mp4"
        if self.format_name == "matroska,webm":
            webm = self.video_codec in (None, "vp8", "vp9", "av1") and self.audio_codec in (
                None, "vorbis", "opus",
            )  # fmt: skip
            return f"{kind}/webm" if webm else f"{kind}/x-matroska"
        return {
            "ogg": f"{kind}/ogg", "wav": "audio/wav", "mp3": "audio/mpeg", "aac": "audio/aac",
        }.get(self.format_name, "application/octet-stream")  # fmt: skip


def _temp_sibling(path: Path, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    return Path(name)


def _publish(tmp: Path, final: Path) -> None:
    if not tmp.exists() or tmp.stat().st_size == 0:
        raise MediaError(f"ffmpeg wrote nothing for {final}")
    tmp.chmod(0o644)  # mkstemp makes 0600; the web server may run as another user
    os.replace(tmp, final)


# --- probing -----------------------------------------------------------------

_DURATION = re.compile(r"^\s*Duration:\s*(?:(\d+):(\d\d):(\d\d(?:\.\d+)?)|N/A)", re.M)
_STREAM = re.compile(r"^\s*Stream #\d+:\d+\S*: (Video|Audio): (\w+)(.*)$", re.M)
_SIZE = re.compile(r"(?<!\w)([1-9]\d{0,4})x([1-9]\d{0,4})\b")
_INPUT = re.compile(r"^Input #0, (.+?), from '", re.M)
_PROBED = re.compile(r"Format (\S+) probed with size=")
_TIME = re.compile(r"time=\s*(\d+):(\d\d):(\d\d(?:\.\d+)?)")


def _seconds(h: str, m: str, s: str) -> float:
    return int(h) * 3600 + int(m) * 60 + float(s)


def probe(path: str | os.PathLike) -> MediaInfo:
    """Describe a media file from the summary ``ffmpeg -hide_banner -i`` prints.

    Only the allowed demuxers may open it (``ffmpeg.input_args``); anything else
    raises NotMedia naming what it is. Raises MediaError when the file is missing.
    When the container has no duration (e.g. a live-written WebM), the streams
    are copied to the null muxer to measure it.
    """
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    with tempfile.TemporaryFile() as err:
        ffmpeg.run([*base_command(loglevel="info"), *input_args(path)],
                   f"Probing {path.name}", PROBE_LIMITS, stderr_file=err)  # fmt: skip
        err.seek(0)
        text = err.read(ffmpeg.STDERR_MAX_BYTES).decode("utf-8", "replace")
    opened = _INPUT.search(text)
    if opened is None or opened[1] not in ffmpeg.MEDIA_FORMATS:
        received = _name_refused(path)
        raise NotMedia(f"{path.name} is {received}, not a recording in an allowed format", received)
    header = text.split("At least one output file", 1)[0]
    info: dict = {"duration": 0.0, "format_name": opened[1]}
    for kind, codec, rest in _STREAM.findall(header):
        if kind == "Video" and "(attached pic)" not in rest and not info.get("has_video"):
            size = _SIZE.search(rest)
            info.update(has_video=True, video_codec=codec)
            if size:
                info.update(width=int(size[1]), height=int(size[2]))
        elif kind == "Audio" and not info.get("has_audio"):
            info.update(has_audio=True, audio_codec=codec)
    if not (info.get("has_video") or info.get("has_audio")):
        raise NotMedia(f"{path.name} has no audio or video stream", f"{opened[1]} without streams")
    match = _DURATION.search(header)
    if match and match[1] is not None:
        info["duration"] = _seconds(match[1], match[2], match[3])
    else:
        info["duration"] = _measure_duration(path)
    return MediaInfo(**info)


def _name_refused(path: Path) -> str:
    """What a refused file is: the format ffmpeg's probe scores it as (asked at
    debug level, still under the allowlist, so nothing is opened), else a
    guess from its first bytes."""
    with tempfile.TemporaryFile() as err:
        ffmpeg.run([*base_command(loglevel="debug"), *input_args(path)],
                   f"Probing {path.name}", PROBE_LIMITS, stderr_file=err)  # fmt: skip
        err.seek(0)
        found = _PROBED.search(err.read(ffmpeg.STDERR_MAX_BYTES).decode("utf-8", "replace"))
    if found:
        return f"{KNOWN_FORMATS.get(found[1], 'a file of format')} ({found[1]})"
    with open(path, "rb") as fh:
        head = fh.read(512).lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    for magic, name in MAGIC:
        if head.startswith(magic) or (magic.startswith(b"<") and magic in head):
            return name
    return "data ffmpeg does not recognise as media" if head else "an empty file"


def _measure_duration(path: Path) -> float:
    # Copying every packet to the null muxer reads the whole file but decodes
    # nothing; the last progress line holds the end time.
    limits = ffmpeg.Limits(
        timeout=60 + path.stat().st_size / MEASURE_BYTES_PER_SECOND, output_bytes=0
    )
    with tempfile.TemporaryFile() as err:
        ffmpeg.run([ffmpeg_exe(), "-hide_banner", "-nostdin", *input_args(path), "-map", "0",
                    "-c", "copy", "-f", "null", "-"],
                   f"Measuring {path.name}", limits, stderr_file=err)  # fmt: skip
        times = _TIME.findall(ffmpeg.tail(err, lines=40))
    return _seconds(*times[-1]) if times else 0.0


def duration_of(path: str | os.PathLike) -> float:
    """Duration of a media file in seconds."""
    return probe(path).duration


# --- composite -----------------------------------------------------------------


def grid_for(count: int) -> tuple[int, int]:
    """(columns, rows) of the layout: 1 → 1x1, 2 → 2x1, 3–4 → 2x2, 5–9 → 3x3,
    10–16 → 4x4."""
    if count < 1:
        raise ValueError("a composite needs at least one input")
    if count == 2:
        return 2, 1
    side = math.ceil(math.sqrt(count))
    return side, side


def tile_positions(count: int, width: int, height: int) -> tuple[int, int, list[tuple[int, int]]]:
    """Cell size and top-left corner of each tile on a ``width`` x ``height``
    canvas. Unused rows are split above and below the grid and a partly filled
    last row is centred, so 3 tiles show as two above one."""
    cols, rows = grid_for(count)
    cell_w, cell_h = width // cols // 2 * 2, height // rows // 2 * 2
    used_rows = math.ceil(count / cols)
    top = (height - used_rows * cell_h) // 2
    positions = []
    for index in range(count):
        row, col = divmod(index, cols)
        in_row = min(cols, count - row * cols)
        left = (width - in_row * cell_w) // 2
        positions.append((left + col * cell_w, top + row * cell_h))
    return cell_w, cell_h, positions


def composite_command(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    width: int = 1280,
    height: int = 720,
    fps: int = 25,
    preset: str = "veryfast",
    crf: int = 23,
    infos: Sequence[MediaInfo] | None = None,
) -> list[str]:
    """The ffmpeg command that merges 1..16 individual recordings into one H.264/AAC
    MP4 (faststart) showing every participant in a grid, with all audio mixed.

    Each input is probed (unless ``infos`` is given): inputs without audio are left
    out of the mix (silence is generated when none has audio), inputs without video
    get a dark tile, and shorter inputs hold their last frame so the result lasts
    as long as the longest input. Every input starts at time zero; within a file the
    offset between its audio and video is kept (a late video track shows its first
    frame until it starts, a late audio track is preceded by silence).
    """
    inputs = [Path(p) for p in inputs]
    if not 1 <= len(inputs) <= 16:
        raise MediaError(f"A composite takes 1 to 16 recordings, got {len(inputs)}")
    if infos is None:
        with ThreadPoolExecutor(max_workers=min(8, len(inputs))) as pool:
            infos = list(pool.map(probe, inputs))
    if not any(info.has_video or info.has_audio for info in infos):
        raise MediaError("None of the recordings has a video or audio stream")
    longest = max(info.duration for info in infos)
    if longest <= 0:
        raise MediaError("Could not tell the duration of any of the recordings")
    cell_w, cell_h, positions = tile_positions(len(inputs), width, height)
    if len(inputs) == 1:
        cell_w, cell_h = width // 2 * 2, height // 2 * 2

    graph = []
    for i, info in enumerate(infos):
        if info.has_video:
            graph.append(
                f"[{i}:v:0]fps={fps}:start_time=0,"
                f"scale={cell_w}:{cell_h}:force_original_aspect_ratio=decrease,"
                f"pad={cell_w}:{cell_h}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,"
                f"format=yuv420p,tpad=stop=-1:stop_mode=clone[v{i}]"
            )
        else:
            graph.append(f"color=c=0x202020:s={cell_w}x{cell_h}:r={fps},format=yuv420p[v{i}]")
    if len(inputs) == 1:
        graph.append("[v0]null[vout]")
    else:
        layout = "|".join(f"{x}_{y}" for x, y in positions)
        tiles = "".join(f"[v{i}]" for i in range(len(inputs)))
        graph.append(
            f"{tiles}xstack=inputs={len(inputs)}:layout={layout}:fill=black,"
            f"pad={width // 2 * 2}:{height // 2 * 2}:0:0:color=black[vout]"
        )

    voiced = [i for i, info in enumerate(infos) if info.has_audio]
    for i in voiced:
        graph.append(f"[{i}:a:0]aresample=48000:async=1:first_pts=0[a{i}]")
    if not voiced:
        graph.append("anullsrc=r=48000:cl=stereo[aout]")
    elif len(voiced) == 1:
        graph.append(f"[a{voiced[0]}]apad[aout]")
    else:
        # normalize=0 keeps each voice at its level when others stop talking or
        # their recording ends; the limiter catches the rare overlapping peaks.
        sources = "".join(f"[a{i}]" for i in voiced)
        graph.append(
            f"{sources}amix=inputs={len(voiced)}:duration=longest:normalize=0,"
            "alimiter=limit=0.95:level=0,apad[aout]"
        )

    cmd = base_command()
    for path in inputs:
        cmd += input_args(path)
    cmd += [
        "-filter_complex", ";".join(graph), "-map", "[vout]", "-map", "[aout]",
        "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
        "-g", str(2 * fps), "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-ar", "48000",
        "-t", f"{longest:.3f}", "-movflags", "+faststart", "-f", "mp4", path_arg(output),
    ]  # fmt: skip
    return cmd


def make_composite(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    width: int = 1280,
    height: int = 720,
    preset: str = "veryfast",
    crf: int = 23,
    infos: Sequence[MediaInfo] | None = None,
) -> MediaInfo:
    """Merge individual recordings into ``output`` (see :func:`composite_command`).

    ffmpeg writes a temporary file next to ``output`` which is renamed into place
    only on success, so a reader never sees half a video. Raises MediaError with
    the end of ffmpeg's stderr on failure; the run's time and output size are
    bounded by the longest input (see composite_limits). Returns the probe of
    the result.
    """
    inputs, output = list(inputs), Path(output)
    if infos is None:
        with ThreadPoolExecutor(max_workers=min(8, max(1, len(inputs)))) as pool:
            infos = list(pool.map(probe, inputs))
    tmp = _temp_sibling(output, ".part")
    try:
        cmd = composite_command(
            inputs, tmp, width=width, height=height, preset=preset, crf=crf, infos=infos
        )
        what = f"Compositing {len(inputs)} recording(s) into {output.name}"
        ffmpeg.run(cmd, what, composite_limits(max(info.duration for info in infos)))
        _publish(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return probe(output)


def composite_limits(longest: float) -> ffmpeg.Limits:
    """Time and output size of a composite lasting ``longest`` seconds."""
    return ffmpeg.Limits(
        timeout=COMPOSITE_BASE_SECONDS + COMPOSITE_SECONDS_PER_SECOND * longest,
        output_bytes=int(64 * 1024 * 1024 + COMPOSITE_BYTES_PER_SECOND * longest),
    )


def make_poster(
    video_path: str | os.PathLike, poster_path: str | os.PathLike, at_seconds: float = 1.0
) -> None:
    """Write a JPEG of the frame at ``at_seconds`` (the first frame if the video is
    shorter than that)."""
    video_path, poster_path = Path(video_path), Path(poster_path)
    info = probe(video_path)
    if not info.has_video:
        raise MediaError(f"{video_path} has no video stream to take a poster from")
    at = at_seconds if info.duration > at_seconds else 0.0
    tmp = _temp_sibling(poster_path, ".part")
    try:
        # A seek near the end can yield no frame; the first frame always exists.
        for seek in dict.fromkeys((at, 0.0)):
            try:
                ffmpeg.run(
                    [*base_command(), "-ss", f"{seek:.3f}", *input_args(video_path),
                     "-frames:v", "1", "-q:v", "3", "-update", "1", "-f", "image2",
                     "-c:v", "mjpeg", path_arg(tmp)],
                    f"Making a poster of {video_path.name}", POSTER_LIMITS,
                )  # fmt: skip
            except MediaError:
                if seek == 0.0:
                    raise
            if tmp.stat().st_size > 0:
                break
        _publish(tmp, poster_path)
    finally:
        tmp.unlink(missing_ok=True)
