"""The webhooks a delivery sends: ``file_transfer`` once, when every file of
the destination's types that the session will have is verified (processing
finished or failed), ``delivery_failed`` when the engine gives up. Each is
queued under a dedupe key with the delivery's generation, so running a
delivery twice never announces it twice, and a person's Redeliver (a new
generation) is announced once more.

The worker that completes a delivery sends its ``file_transfer`` itself, at
once (``send_now``), rather than waiting for the queued send task to come
round the broker: the outbox's claim lets only one of them send it."""

from __future__ import annotations

import logging

from django.utils import timezone

from webhooks.models import WebhookMessage
from webhooks.outbox import queue_event

from .destinations import destination_for
from .destinations.base import Destination
from .models import DeliveredFile, Delivery

logger = logging.getLogger(__name__)


def _common(delivery: Delivery, event_type: str, dest: Destination) -> dict:
    """EnableX's keys: ``trans_date`` in Unix seconds, ``destination.name`` as
    EnableX names the kind (awss3, ftp, sftp, ssh, azure, gdrive, local); the
    portal adds ``label``, the administrator's name of the destination."""
    session, destination = delivery.session, delivery.destination
    return {
        "type": event_type,
        "app_id": session.project.app_id,
        "room_id": session.room.room_id,
        "conf_num": session.conf_num,
        "trans_date": int(timezone.now().timestamp()),
        "destination": {
            "name": dest.webhook_name,
            **dest.webhook_destination(),
            "label": destination.name,
        },
    }


def _destination(delivery: Delivery) -> Destination:
    # Built, never opened: only its names and URLs are needed.
    destination = delivery.destination
    return destination_for(destination.kind, destination.merged_config())


def announce_file_transfer(delivery: Delivery) -> WebhookMessage | None:
    """Queue ``file_transfer`` with the final location of every file: ``url``
    (e.g. s3://bucket/key, sftp://host/path) and ``path`` as the destination
    reports it, and ``missing``: the files of its types the session will never
    have (``[{type, reason}]``, e.g. the transcode of a failed processing)."""
    files = delivery.files.select_related("recording_file").order_by("id")
    dest = _destination(delivery)
    payload = {
        **_common(delivery, "file_transfer", dest),
        "files": [
            {
                "url": dest.file_url(f.remote_path),
                "type": f.recording_file.type,
                "name": f.recording_file.name,
                "path": f.remote_path,
                "size": f.recording_file.size,
                "sha256": f.recording_file.sha256,
            }
            for f in files
        ],
        "missing": [{"type": m["type"], "reason": m["reason"]} for m in delivery.missing or []],
    }
    key = f"delivery:{delivery.pk}:file_transfer"
    if delivery.generation > 1:
        key += f":{delivery.generation}"
    return queue_event(delivery.session.project, "file_transfer", payload, dedupe_key=key)


def send_now(message_pk: int) -> None:
    """Send a queued announcement from this process now (call it after the
    commit that queued it). Whoever claims the message first sends it: the
    queued task then finds it sent; a failed attempt is retried on the
    outbox's schedule, and an error here leaves the message to the task and
    the sweep."""
    from webhooks import sending

    try:
        sending.attempt(message_pk)
    except Exception:
        logger.warning("webhook message %s: not sent at once; the queue sends it", message_pk, exc_info=True)


def announce_failure(delivery: Delivery, reason: str, attempts: int) -> None:
    """Queue ``delivery_failed`` saying why and which files did not arrive."""
    missing = delivery.files.exclude(state=DeliveredFile.State.VERIFIED).select_related(
        "recording_file"
    )
    payload = {
        **_common(delivery, "delivery_failed", _destination(delivery)),
        "error": reason,
        "attempts": attempts,
        "files": [{"type": f.recording_file.type, "name": f.recording_file.name} for f in missing],
    }
    queue_event(delivery.session.project, "delivery_failed", payload,
                dedupe_key=f"delivery:{delivery.pk}:delivery_failed:{attempts}")  # fmt: skip
