"""Media work around the ffmpeg binary shipped by the ``imageio-ffmpeg`` wheel.

Pure functions, no models: generate sample participant recordings, probe files,
build and run the command that merges individual recordings into one playable
``transcoded.mp4``, and cut a poster frame. There is no ffprobe in the wheel, so
:func:`probe` parses the stream summary ``ffmpeg -i`` prints on stderr.

ffmpeg always runs as a subprocess that streams from and to disk; its stderr goes
to a temporary file so memory stays bounded however long the job runs.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import imageio_ffmpeg

STDERR_TAIL_LINES = 12
_LOG_PREFIX = re.compile(r"\[[^\]\n]* @ 0x[0-9a-f]+\] ?")  # "[libx264 @ 0x55d0...] "


class MediaError(Exception):
    """ffmpeg could not read or write a file. The message names the file and
    ends with the last lines ffmpeg printed, which usually say what is wrong."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    width: int | None = None
    height: int | None = None
    has_video: bool = False
    has_audio: bool = False
    video_codec: str | None = None
    audio_codec: str | None = None


@cache
def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def _tail(stderr_file, lines: int = STDERR_TAIL_LINES) -> str:
    stderr_file.seek(0, os.SEEK_END)
    size = stderr_file.tell()
    stderr_file.seek(max(0, size - 8192))
    text = _LOG_PREFIX.sub("", stderr_file.read().decode("utf-8", "replace"))
    return "\n".join(line.strip() for line in text.strip().splitlines()[-lines:])


def run_ffmpeg(cmd: Sequence[str], what: str, timeout: float | None = None) -> None:
    """Run an ffmpeg command; raise MediaError("<what> failed: <stderr tail>")."""
    with tempfile.TemporaryFile() as stderr_file:
        try:
            proc = subprocess.run(
                list(cmd),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr_file,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise MediaError(
                f"{what} took longer than {timeout:g} s: {_tail(stderr_file)}"
            ) from exc
        if proc.returncode != 0:
            raise MediaError(f"{what} failed (ffmpeg exit {proc.returncode}): {_tail(stderr_file)}")


def _arg(path: str | os.PathLike) -> str:
    """A path as an ffmpeg argument: absolute, so a name like ``-x.mp4`` or
    ``http:x.mp4`` is never taken for an option or a protocol."""
    return os.path.abspath(path)


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
_TIME = re.compile(r"time=\s*(\d+):(\d\d):(\d\d(?:\.\d+)?)")


def _seconds(h: str, m: str, s: str) -> float:
    return int(h) * 3600 + int(m) * 60 + float(s)


def probe(path: str | os.PathLike) -> MediaInfo:
    """Describe a media file from the summary ``ffmpeg -hide_banner -i`` prints.

    Raises MediaError when the file is missing or not media ffmpeg can read.
    When the container has no duration (e.g. a live-written WebM), the streams
    are copied to the null muxer to measure it.
    """
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", _arg(path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
    )
    text = proc.stderr.decode("utf-8", "replace")
    if "Input #0" not in text:
        last = text.strip().splitlines()[-1] if text.strip() else "no output from ffmpeg"
        raise MediaError(f"{path} is not a readable media file: {last.split(': ', 1)[-1]}")
    header = text.split("At least one output file", 1)[0]
    info: dict = {"duration": 0.0}
    for kind, codec, rest in _STREAM.findall(header):
        if kind == "Video" and "(attached pic)" not in rest and not info.get("has_video"):
            size = _SIZE.search(rest)
            info.update(has_video=True, video_codec=codec)
            if size:
                info.update(width=int(size[1]), height=int(size[2]))
        elif kind == "Audio" and not info.get("has_audio"):
            info.update(has_audio=True, audio_codec=codec)
    match = _DURATION.search(header)
    if match and match[1] is not None:
        info["duration"] = _seconds(match[1], match[2], match[3])
    else:
        info["duration"] = _measure_duration(path)
    return MediaInfo(**info)


def _measure_duration(path: Path) -> float:
    # Copying every packet to the null muxer reads the whole file but decodes
    # nothing; the last progress line holds the end time.
    with tempfile.TemporaryFile() as stderr_file:
        subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", _arg(path), "-map", "0",
             "-c", "copy", "-f", "null", "-"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr_file,
            timeout=3600, check=False,
        )  # fmt: skip
        times = _TIME.findall(_tail(stderr_file, lines=40))
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

    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    for path in inputs:
        cmd += ["-i", _arg(path)]
    cmd += [
        "-filter_complex", ";".join(graph), "-map", "[vout]", "-map", "[aout]",
        "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
        "-g", str(2 * fps), "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-ar", "48000",
        "-t", f"{longest:.3f}", "-movflags", "+faststart", "-f", "mp4", _arg(output),
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
    timeout: float | None = None,
) -> MediaInfo:
    """Merge individual recordings into ``output`` (see :func:`composite_command`).

    ffmpeg writes a temporary file next to ``output`` which is renamed into place
    only on success, so a reader never sees half a video. Raises MediaError with
    the end of ffmpeg's stderr on failure. Returns the probe of the result.
    """
    inputs, output = list(inputs), Path(output)
    tmp = _temp_sibling(output, ".part")
    try:
        cmd = composite_command(inputs, tmp, width=width, height=height, preset=preset, crf=crf)
        what = f"Compositing {len(inputs)} recording(s) into {output.name}"
        run_ffmpeg(cmd, what, timeout=timeout)
        _publish(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return probe(output)


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
                run_ffmpeg(
                    [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                     "-ss", f"{seek:.3f}", "-i", _arg(video_path), "-frames:v", "1",
                     "-q:v", "3", "-update", "1", "-f", "image2", "-c:v", "mjpeg", _arg(tmp)],
                    f"Making a poster of {video_path.name}",
                )  # fmt: skip
            except MediaError:
                if seek == 0.0:
                    raise
            if tmp.stat().st_size > 0:
                break
        _publish(tmp, poster_path)
    finally:
        tmp.unlink(missing_ok=True)
