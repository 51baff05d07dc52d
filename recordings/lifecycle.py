"""The one hand-off from recordings to delivery: which file types are ready at
which moment of a session's life, and which the session will never have.

Delivery may upload a file as soon as it is ready (a live recording when it is
uploaded, the individual recordings, chat and metadata at session end, while the
transcode runs), but it announces a session to a destination only once, when
the session can get no more files: after processing finished or failed. A
failed processing announces what the session has and lists what is missing.
"""

from __future__ import annotations

import enum

from .models import RecordingFile, Session

Type = RecordingFile.Type


class Event(enum.StrEnum):
    LIVE_UPLOADED = "live_uploaded"
    SESSION_ENDED = "session_ended"
    PROCESSING_DONE = "processing_done"
    PROCESSING_FAILED = "processing_failed"


# The table: the file types that are ready (and may start uploading) at each
# event, and whether the session's files are then final (complete: announce).
# Live recordings are uploaded during the session; the ingest API refuses
# files after the end, so at the end everything but the transcode is there.
READY_AT: dict[Event, tuple[frozenset[str], bool]] = {
    Event.LIVE_UPLOADED: (frozenset({Type.LIVE}), False),
    Event.SESSION_ENDED: (frozenset({Type.LIVE, Type.INDIVIDUAL, Type.CHAT, Type.METADATA}), False),
    Event.PROCESSING_DONE: (frozenset(Type.values), True),
    Event.PROCESSING_FAILED: (frozenset(Type.values) - {Type.TRANSCODED}, True),
}

TRANSCODE_FAILED = "processing failed; the session has no transcoded recording"


def missing_for(session: Session) -> list[dict[str, str]]:
    """The files a session whose processing failed will never have, as
    ``[{type, reason}]`` (the ``missing`` of ``file_transfer``). A session with
    no individual recording has nothing to transcode, so nothing is missing."""
    if session.state != Session.State.FAILED:
        return []
    has_transcoded = session.files.filter(type=Type.TRANSCODED).exists()
    had_input = session.files.filter(type=Type.INDIVIDUAL).exists()
    if has_transcoded or not had_input:
        return []
    return [{"type": Type.TRANSCODED.value, "reason": TRANSCODE_FAILED}]


def files_ready(session_id: int, event: Event) -> None:
    """Hand the files of ``event`` (see READY_AT) to delivery. Call it after
    commit: delivery reads the session's files in its own transaction."""
    # Imported here: delivery's models import recordings' models.
    from delivery.scheduling import schedule_deliveries_for_session

    types, final = READY_AT[event]
    schedule_deliveries_for_session(session_id, set(types), final=final)
