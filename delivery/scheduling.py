"""Scheduling deliveries when files become ready: the hand-off from
recordings (``recordings.lifecycle.files_ready`` calls
``schedule_deliveries_for_session``) and the sweep's completion of waiting
deliveries. The Delivery row is the truth; ``wake`` only nudges a worker
after commit (if the broker is down, the sweep finds the row anyway)."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from recordings.lifecycle import missing_for
from recordings.models import RecordingFile, Session

from .delivery_log import capped_log, log_entry
from .models import DeliveredFile, Delivery, DeliveryDestination

logger = logging.getLogger(__name__)

State = Delivery.State
FINISHED_SESSION_STATES = (Session.State.READY, Session.State.FAILED)


def wake(delivery_id: int) -> None:
    """Queue a run of the delivery after the current transaction commits."""

    def send() -> None:
        from portal.queues import enqueue

        try:
            enqueue("delivery.tasks.run_delivery", delivery_id, task_name=f"delivery-{delivery_id}")
        except Exception:
            logger.warning("Could not queue delivery %s; the sweep will run it", delivery_id)

    transaction.on_commit(send)


def append_log(delivery: Delivery, event: str, message: str) -> None:
    delivery.log = capped_log([*(delivery.log or []), log_entry(event, message)])


def sync_files(
    session: Session, destination: DeliveryDestination, types: set[str], *, final: bool
) -> tuple[Delivery | None, bool]:
    """Make sure the delivery of ``session`` to ``destination`` exists and has a
    row for every existing file of ``types`` it should carry; once ``final``,
    mark it so (with what the session will never have), so the engine may
    announce it. Returns the delivery (None if nothing to deliver or announce)
    and whether it changed (new files, or became final)."""
    chosen = set(destination.file_types or [])
    files = list(
        session.files.filter(type__in=chosen & types, expired_at__isnull=True).order_by("id")
    )
    missing = [m for m in missing_for(session) if m["type"] in chosen] if final else []
    existing = Delivery.objects.filter(session=session, destination=destination).first()
    if not files and not missing and (existing is None or not final):
        return None, False
    delivery, _ = Delivery.objects.get_or_create(
        session=session,
        destination=destination,
        defaults={"state": State.QUEUED, "next_attempt_at": timezone.now()},
    )
    delivery = Delivery.objects.select_for_update().get(pk=delivery.pk)
    known = set(delivery.files.values_list("recording_file_id", flat=True))
    new = [DeliveredFile(delivery=delivery, recording_file=f) for f in files if f.pk not in known]
    if new:
        DeliveredFile.objects.bulk_create(new, ignore_conflicts=True)
    delivery.bytes_total = delivery.files.aggregate(total=Sum("recording_file__size"))["total"] or 0
    fields = ["bytes_total"]
    if new and known:
        names = ", ".join(f.recording_file.name for f in new)
        append_log(delivery, "files_added", f"added {names}")
        fields.append("log")
    became_final = final and not delivery.files_final
    if became_final:
        delivery.files_final, delivery.missing = True, missing
        fields += ["files_final", "missing"]
    if (new or became_final) and delivery.state in (State.DELIVERED, State.FAILED, State.WAITING):
        if delivery.state == State.DELIVERED:
            delivery.generation += 1
        delivery.state = State.QUEUED
        delivery.attempts = 0
        delivery.next_attempt_at = timezone.now()
        delivery.finished_at = None
        fields += ["generation", "state", "attempts", "next_attempt_at", "finished_at"]
    delivery.save(update_fields=fields)
    return delivery, bool(new) or became_final


def schedule_deliveries_for_session(
    session_id: int, ready_types: set[str] | None = None, *, final: bool | None = None
) -> None:
    """Create (idempotently) a Delivery for every enabled destination of the
    session's project whose chosen file types are now ready, and wake a
    worker after commit. ``ready_types`` limits it to file types that just
    became ready; ``final`` says the session can get no more files (default:
    its processing is over). ``recordings.lifecycle.files_ready`` is the
    hand-off that calls it. Safe to call repeatedly."""
    types = set(ready_types) if ready_types is not None else set(RecordingFile.Type.values)
    session = Session.objects.select_related("project", "room").filter(pk=session_id).first()
    if session is None:
        return
    if final is None:
        final = session.state in FINISHED_SESSION_STATES
    for destination in session.project.destinations.filter(enabled=True):
        with transaction.atomic():
            delivery, changed = sync_files(session, destination, types, final=final)
            if delivery is not None and changed and delivery.state == State.QUEUED:
                wake(delivery.pk)


def complete_waiting(limit: int = 200) -> int:
    """Hand off again the sessions whose processing is over but whose
    deliveries still wait for it: the hand-off runs after commit, so a worker
    killed in between would otherwise leave them waiting for ever. Repeating
    a hand-off is harmless. Returns how many sessions were handed off."""
    session_ids = list(
        Delivery.objects.filter(state=State.WAITING, session__state__in=FINISHED_SESSION_STATES)
        .values_list("session_id", flat=True)
        .distinct()[:limit]
    )
    for session_id in session_ids:
        schedule_deliveries_for_session(session_id)
    if session_ids:
        logger.info("delivery sweep completed %d waiting sessions", len(session_ids))
    return len(session_ids)
