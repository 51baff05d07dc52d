"""Webhook events about a session's files (queued through projects.webhooks)."""

from __future__ import annotations

from collections.abc import Iterable

from django.utils import timezone

from projects import webhooks

from .models import RecordingFile, Session

# event type -> the key that lists its files (as in the Archive API)
EVENT_FILE_KEY = {
    "recording": "recording",
    "transcoded": "transcoded",
    "live_recording": "live_recording",
}


def file_object(file: RecordingFile) -> dict:
    return {"url": file.public_url, "name": file.name, "size": file.size, "sha256": file.sha256}


def queue_session_event(
    session: Session, event_type: str, files: Iterable[RecordingFile], *, dedupe_key: str
):
    """Queue ``event_type`` about ``files`` of ``session``; sent after commit."""
    payload = {
        "type": event_type,
        "app_id": session.project.app_id,
        "room_id": session.room.room_id,
        "conf_num": session.conf_num,
        "trans_date": timezone.now().isoformat(),
        EVENT_FILE_KEY[event_type]: [file_object(f) for f in files],
    }
    # Looked up on the module so the webhook work can replace it.
    return webhooks.queue_event(session.project, event_type, payload, dedupe_key=dedupe_key)


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
    return webhooks.queue_event(
        session.project, "recording_state", payload, dedupe_key=dedupe_key
    )
