"""What an uploaded file must be before the portal keeps it: the server, never
the client, decides its content type.

``individual`` and ``live`` uploads must probe as media in an allowed format
(415 otherwise) and stay within the limits at the door (422 each, naming the
limit); ``chat`` and ``metadata`` must be UTF-8 JSON (422). The checks read
the file where the upload handler streamed it, before anything is stored.
Probing reads the head of a recording (and an MP4's index), not all of it;
only a file whose container states no duration (a live-written WebM) is read
through, without decoding, to measure it, so it cannot dodge the limits."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from . import media
from .models import RecordingFile, Session

MEDIA_TYPES = {RecordingFile.Type.INDIVIDUAL, RecordingFile.Type.LIVE}
JSON_TYPES = {RecordingFile.Type.CHAT, RecordingFile.Type.METADATA}
# Largest frame accepted, either way round (UHD, landscape or portrait).
MAX_LONG_SIDE, MAX_SHORT_SIDE = 4096, 2160
# One composite tiles at most 4x4 recordings (media.grid_for).
MAX_INDIVIDUAL_PER_SESSION = 16
# A recording cannot last longer than its session has so far; the margin covers
# a media server that starts recording a little before it asks for the session
# and clocks that disagree by a few minutes.
WALL_CLOCK_MARGIN = timedelta(minutes=5)
# A 6-hour chat at one message a second is ~3 MB (21,600 messages of ~150
# bytes); json.loads holds the whole document, so its size bounds memory here.
JSON_MAX_BYTES = 32 * 1024 * 1024


@dataclass
class Refused(Exception):
    """The upload is not kept: ``status`` 415 (not allowed media) or 422 (a limit
    or invalid JSON); ``result`` is the Ingest API's code."""

    result: int
    message: str
    status: int

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Admitted:
    content_type: str
    duration: float | None = None


def _hms(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def admit(session: Session, file_type: str, path: str) -> Admitted:
    """Check the uploaded file at ``path`` for ``session``; raise Refused."""
    if file_type in MEDIA_TYPES:
        return admit_media(session, file_type, path)
    if file_type in JSON_TYPES:
        admit_json(file_type, path)
        return Admitted("application/json")
    raise Refused(1001, f"type must be one of {', '.join(RecordingFile.Type.values)}", 400)


def admit_media(session: Session, file_type: str, path: str) -> Admitted:
    try:
        info = media.probe(path)
    except media.NotMedia as exc:
        raise Refused(
            1015,
            f"{'An' if file_type[0] in 'aeiou' else 'A'} {file_type} recording must be audio or video (MP4/MOV, Matroska/WebM, Ogg, "
            f"WAV, MP3 or AAC); received {exc.received}.",
            415,
        ) from None
    except media.MediaError:
        raise Refused(1015, f"The {file_type} recording could not be read as media.", 415) from None
    limit = settings.MEDIA_MAX_SECONDS
    if info.duration > limit:
        raise Refused(
            1022,
            f"The recording lasts {_hms(info.duration)}, longer than the limit of "
            f"{_hms(limit)} (MEDIA_MAX_SECONDS).",
            422,
        )
    if info.width and info.height:
        long_side, short_side = max(info.width, info.height), min(info.width, info.height)
        if long_side > MAX_LONG_SIDE or short_side > MAX_SHORT_SIDE:
            raise Refused(
                1022,
                f"The video is {info.width}x{info.height}, larger than the limit of "
                f"{MAX_LONG_SIDE}x{MAX_SHORT_SIDE}.",
                422,
            )
    elapsed = timezone.now() - session.started_at
    if info.duration > (elapsed + WALL_CLOCK_MARGIN).total_seconds():
        raise Refused(
            1022,
            f"The recording claims to last {_hms(info.duration)}, but session "
            f"{session.conf_num} started {_hms(elapsed.total_seconds())} ago (a recording may "
            f"last at most as long as its session, plus {_hms(WALL_CLOCK_MARGIN.total_seconds())}).",
            422,
        )
    return Admitted(info.content_type, info.duration)


def refuse_if_composite_full(session: Session, file_type: str) -> None:
    """Called with the session row locked, so two uploads cannot both be the 16th."""
    if file_type != RecordingFile.Type.INDIVIDUAL:
        return
    if (
        session.files.filter(type=RecordingFile.Type.INDIVIDUAL).count()
        >= MAX_INDIVIDUAL_PER_SESSION
    ):
        raise Refused(
            1022,
            f"Session {session.conf_num} has {MAX_INDIVIDUAL_PER_SESSION} individual recordings "
            f"already, the most one composite can show.",
            422,
        )


def admit_json(file_type: str, path: str) -> None:
    size = Path(path).stat().st_size
    if size > JSON_MAX_BYTES:
        raise Refused(
            1022,
            f"The {file_type} file is {size} bytes, larger than the limit of {JSON_MAX_BYTES} "
            "bytes for JSON.",
            422,
        )
    # Decode strictly first (json.loads would accept UTF-16 and UTF-32 too).
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refused(
            1022, f"The {file_type} file must be UTF-8 JSON; byte {exc.start} is not UTF-8.", 422
        ) from None
    try:
        json.loads(text.removeprefix("\ufeff"))
    except json.JSONDecodeError as exc:
        raise Refused(
            1022,
            f"The {file_type} file must be UTF-8 JSON; it is not valid JSON "
            f"(line {exc.lineno}, column {exc.colno}).",
            422,
        ) from None
    except RecursionError:
        raise Refused(1022, f"The {file_type} file nests JSON too deeply.", 422) from None


# Extensions that agree with each stored type; a name ending otherwise gets the
# first one, so a file never carries a name that says it is something else.
EXTENSIONS = {
    "video/mp4": (".mp4", ".m4v", ".mov", ".3gp"), "audio/mp4": (".m4a", ".mp4"),
    "video/webm": (".webm",), "audio/webm": (".weba", ".webm"),
    "video/x-matroska": (".mkv",), "audio/x-matroska": (".mka", ".mkv"),
    "video/ogg": (".ogv", ".ogg"), "audio/ogg": (".ogg", ".oga", ".opus"),
    "audio/wav": (".wav",), "audio/mpeg": (".mp3",), "audio/aac": (".aac",),
    "application/json": (".json",),
}  # fmt: skip


def name_for(name: str, admitted: Admitted) -> str:
    allowed = EXTENSIONS.get(admitted.content_type)
    stem, ext = os.path.splitext(name)
    if not allowed or ext.lower() in allowed:
        return name
    return (stem or "recording") + allowed[0]
