"""Sample media standing in for what a media server records: one video per
participant (test pattern, tone and name), a chat transcript and a metadata
log. Used by ``simulate_session``, the demo of ``make run``, tests and
benchmarks — never by processing."""

from __future__ import annotations

import json
import os
import random
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from . import ffmpeg
from .media import _publish, _temp_sibling

# Generating runs at several times real time at 640x360 (veryfast); 10 s per
# second of media is room for a loaded machine. The samples are < 1 Mbit/s.
SAMPLE_SECONDS_PER_SECOND = 10
SAMPLE_BYTES_PER_SECOND = 4 * 1024 * 1024

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
)
PATTERNS = ("testsrc2", "smptebars", "testsrc", "rgbtestsrc")


@cache
def font_file() -> str | None:
    """A TrueType font for drawtext (the static ffmpeg has freetype but no
    bundled font), or None when the system has none."""
    for candidate in FONT_CANDIDATES:
        if os.path.isfile(candidate):
            return candidate
    for root in ("/usr/share/fonts", "/usr/local/share/fonts"):
        found = sorted(Path(root).glob("**/*.ttf")) if os.path.isdir(root) else []
        if found:
            return str(found[0])
    return None


def _escape(value: str) -> str:
    """Escape a filter option value for use inside a -filter_complex graph
    (option level, then graph level, as the ffmpeg filter docs describe)."""
    for char in "\\':":
        value = value.replace(char, "\\" + char)
    for char in "\\'[],;":
        value = value.replace(char, "\\" + char)
    return value


def generate_participant_media(
    out_path: str | os.PathLike,
    *,
    name: str,
    seconds: float,
    index: int,
    width: int = 640,
    height: int = 360,
    with_audio: bool = True,
    preset: str = "veryfast",
) -> None:
    """Write an H.264/AAC MP4 standing in for one participant's recording: a test
    pattern (pattern and hue vary with ``index``), the participant's ``name`` drawn
    on it and a sine tone whose pitch varies with ``index``; exactly ``seconds`` long.

    If no font file can be found the name is left out (the pattern still differs).
    """
    out_path = Path(out_path)
    fps = 25
    pattern = PATTERNS[index % len(PATTERNS)]
    video = (
        f"{pattern}=s={width}x{height}:r={fps}:d={seconds:.3f},"
        f"hue=h={(index * 47) % 360},format=yuv420p"
    )
    text_file = None
    font = font_file()
    if font:
        fd, text_file = tempfile.mkstemp(prefix="participant-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(name)
        size = max(12, height // 10)
        video += (
            f",drawtext=fontfile='{_escape(font)}':textfile='{_escape(text_file)}'"
            f":expansion=none:fontsize={size}:fontcolor=white:box=1:boxcolor=black@0.6"
            f":boxborderw={size // 3}:x=(w-text_w)/2:y=h-text_h-{size}"
        )
    cmd = [*ffmpeg.base_command(), *ffmpeg.lavfi_args(video)]
    if with_audio:
        frequency = round(220 * 2 ** (index / 4), 2)
        cmd += ffmpeg.lavfi_args(
            f"sine=frequency={frequency}:sample_rate=48000:duration={seconds:.3f}"
        )
        cmd += ["-c:a", "aac", "-b:a", "64k"]
    cmd += ["-c:v", "libx264", "-preset", preset, "-pix_fmt", "yuv420p", "-g", str(2 * fps),
            "-t", f"{seconds:.3f}", "-movflags", "+faststart", "-f", "mp4"]  # fmt: skip
    tmp = _temp_sibling(out_path, ".part")
    try:
        limits = ffmpeg.Limits(
            timeout=60 + SAMPLE_SECONDS_PER_SECOND * seconds,
            output_bytes=int(16 * 1024 * 1024 + SAMPLE_BYTES_PER_SECOND * seconds),
        )
        ffmpeg.run([*cmd, ffmpeg.path_arg(tmp)], f"Generating {out_path.name}", limits)
        _publish(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
        if text_file:
            os.unlink(text_file)


CHAT_LINES = (
    "Hi everyone, can you hear me?", "Yes, loud and clear.", "Sharing my screen now.",
    "Could you scroll up a bit?", "Link to the doc: https://example.com/agenda",
    "I'll take the action item.", "Sorry, my connection dropped for a second.",
    "Agreed.", "Let's follow up on Thursday.", "Thanks all, talk soon!",
)  # fmt: skip


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def generate_chat_transcript(
    out_path: str | os.PathLike,
    participants: Sequence[str],
    seconds: float,
    *,
    started_at: datetime | None = None,
    seed: int = 0,
) -> None:
    """Write a chat transcript: a JSON list of ``{timestamp, from, message}`` in time
    order, about one message every 20 s (at least two), all within the session."""
    started_at = started_at or datetime.now(UTC)
    rng = random.Random(seed)
    count = max(2, min(200, int(seconds // 20)))
    offsets = sorted(rng.uniform(0, seconds) for _ in range(count))
    messages = [
        {
            "timestamp": _iso(started_at + timedelta(seconds=offset)),
            "from": participants[i % len(participants)] if participants else "system",
            "message": CHAT_LINES[i % len(CHAT_LINES)],
        }
        for i, offset in enumerate(offsets)
    ]
    Path(out_path).write_text(json.dumps(messages, indent=2), encoding="utf-8")


def generate_metadata_log(
    out_path: str | os.PathLike,
    participants: Sequence[str],
    seconds: float,
    room_id: str,
    conf_num: str,
    *,
    started_at: datetime | None = None,
    seed: int = 0,
) -> None:
    """Write a session metadata log: room, conference number, start and end, and
    time-ordered events (session start/end, participant join/leave, stream
    published/unpublished, audio/video mute changes)."""
    started_at = started_at or datetime.now(UTC)
    rng = random.Random(seed)
    events: list[tuple[float, dict]] = [(0.0, {"event": "session-started"})]
    for i, name in enumerate(participants):
        client = f"client-{i + 1}"
        joined = rng.uniform(0, min(2.0, seconds / 4))
        left = seconds - rng.uniform(0, min(2.0, seconds / 4))
        who = {"participant": name, "client_id": client, "stream_id": f"stream-{i + 1}"}
        events += [
            (joined, {"event": "user-joined", **who, "role": "moderator" if i == 0 else "participant"}),
            (joined + 0.2, {"event": "stream-published", **who, "audio": True, "video": True}),
        ]  # fmt: skip
        if seconds > 6:
            muted = rng.uniform(joined + 1, left - 1)
            kind = rng.choice(["audio", "video"])
            events += [
                (muted, {"event": "stream-state", **who, "media": kind, "state": "muted"}),
                (min(left - 0.5, muted + seconds / 5),
                 {"event": "stream-state", **who, "media": kind, "state": "unmuted"}),
            ]  # fmt: skip
        events += [
            (left - 0.2, {"event": "stream-unpublished", **who}),
            (left, {"event": "user-left", **who, "reason": "disconnected"}),
        ]
    events.append((seconds, {"event": "session-ended"}))
    events.sort(key=lambda pair: pair[0])
    log = {
        "room_id": room_id,
        "conf_num": conf_num,
        "started_at": _iso(started_at),
        "ended_at": _iso(started_at + timedelta(seconds=seconds)),
        "events": [
            {"timestamp": _iso(started_at + timedelta(seconds=t)), **event} for t, event in events
        ],
    }
    Path(out_path).write_text(json.dumps(log, indent=2), encoding="utf-8")
