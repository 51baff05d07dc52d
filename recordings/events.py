"""Webhook events about a session's files (queued through webhooks.outbox).

Bodies follow EnableX's notification shapes — ``recording`` lists the URLs of
the individual recordings as strings, ``transcoded`` carries the composite's
URL as a string with ``stage`` and ``file_size``, ``trans_date`` is Unix
seconds — and add ``files`` with each file's name, size, sha256 and
participant, which EnableX does not send."""

from __future__ import annotations

from collections.abc import Iterable

from django.utils import timezone

from webhooks import outbox

from .models import RecordingFile, Session

# The transcoded file announced is the final composite of the session.
TRANSCODED_STAGE = "completed"


def file_object(file: RecordingFile) -> dict:
    return {
        "url": file.public_url,
        "name": file.name,
        "size": file.size,
        "sha256": file.sha256,
        "participant": file.participant,
    }


def event_payload(session: Session, event_type: str, files: list[RecordingFile]) -> dict:
    payload: dict = {
        "type": event_type,
        "app_id": session.project.app_id,
        "room_id": session.room.room_id,
        "conf_num": session.conf_num,
        "trans_date": int(timezone.now().timestamp()),
    }
    if event_type == "transcoded":
        composite = files[0] if files else None
        payload["recording"] = composite.public_url if composite else ""
        payload["stage"] = TRANSCODED_STAGE
        payload["file_size"] = composite.size if composite else 0
    else:  # recording, live_recording: the URLs, as strings
        payload["recording"] = [f.public_url for f in files]
    payload["files"] = [file_object(f) for f in files]
    return payload


def queue_session_event(
    session: Session, event_type: str, files: Iterable[RecordingFile], *, dedupe_key: str
):
    """Queue ``event_type`` about ``files`` of ``session``; sent after commit."""
    payload = event_payload(session, event_type, list(files))
    # Looked up on the module so the webhook work can replace it.
    return outbox.queue_event(session.project, event_type, payload, dedupe_key=dedupe_key)


def queue_recording_state_event(
    session: Session,
    *,
    kind: str,
    state: str,
    position: int | None,
    code: int | None,
    reason: str = "",
    dedupe_key: str | None,
):
    """Queue ``recording_state``: a live recording or stream of ``session``
    is now waiting (with its queue ``position``), on, off or failed (with the
    reference's ``code`` and the portal's ``reason``). Never holds the
    streaming target, which is the tenant's secret."""
    payload = {
        "type": "recording_state",
        "app_id": session.project.app_id,
        "room_id": session.room.room_id,
        "conf_num": session.conf_num,
        "trans_date": int(timezone.now().timestamp()),
        "kind": kind,
        "state": state,
        "position": position,
        "code": code,
    }
    if reason:
        payload["reason"] = reason
    return outbox.queue_event(
        session.project, "recording_state", payload, dedupe_key=dedupe_key
    )
