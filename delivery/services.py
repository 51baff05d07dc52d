"""Delivery services: schedule deliveries when files become ready, and the
actions the deliveries page and ``manage.py delivery`` offer. The Delivery
row is the truth; ``wake`` only nudges a worker after commit (if the broker
is down, the sweep finds the row anyway)."""

from __future__ import annotations

import logging
import traceback
from datetime import date
from typing import Any

from django.db import transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from projects.audit import log_audit
from projects.models import AuditEvent, Project
from recordings.lifecycle import missing_for
from recordings.models import RecordingFile, Session

from .destinations import destination_for
from .destinations.base import TransferError
from .engine import Scrubber, capped_log, log_entry, unexpected_error
from .leftovers import mark_for_fresh_start
from .models import DeliveredFile, Delivery, DeliveryDestination

logger = logging.getLogger(__name__)

State = Delivery.State
FileState = DeliveredFile.State
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


def _append_log(delivery: Delivery, event: str, message: str) -> None:
    delivery.log = capped_log([*(delivery.log or []), log_entry(event, message)])


def _sync_files(
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
        _append_log(delivery, "files_added", f"added {names}")
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
            delivery, changed = _sync_files(session, destination, types, final=final)
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


# --- actions of the deliveries page and the CLI ------------------------------------


def _reset(delivery: Delivery) -> None:
    delivery.state = State.QUEUED
    delivery.attempts = 0
    delivery.next_attempt_at = timezone.now()
    delivery.lease_owner = ""
    delivery.lease_expires_at = None
    delivery.last_error = ""
    delivery.finished_at = None


@transaction.atomic
def do_redeliver(delivery: Delivery, *, acting_user) -> Delivery:
    """Send every file of the delivery again (also files of its types that
    appeared since), as a new generation with its own single file_transfer.
    A run under way loses its lease and stops."""
    delivery = Delivery.objects.select_related("session", "destination").get(pk=delivery.pk)
    session = delivery.session
    _sync_files(session, delivery.destination, set(RecordingFile.Type.values),
                final=session.state in FINISHED_SESSION_STATES)  # fmt: skip
    delivery = Delivery.objects.select_for_update().get(pk=delivery.pk)
    delivery.generation += 1
    delivery.files.update(
        state=FileState.PENDING, bytes_sent=0, remote_path="", seconds=None, verified_at=None,
        error="",
    )  # fmt: skip
    mark_for_fresh_start(delivery)
    _reset(delivery)
    delivery.bytes_sent = 0
    delivery.manifest_written_at = None
    who = getattr(acting_user, "username", None) or "command line"
    _append_log(delivery, "redeliver", f"redelivery requested by {who}")
    delivery.save()
    log_audit(
        delivery.destination.project, AuditEvent.Action.DELIVERY_CHANGED, actor=acting_user,
        change="redeliver", delivery=delivery.pk, conf_num=delivery.session.conf_num,
        destination=delivery.destination.name,
    )  # fmt: skip
    wake(delivery.pk)
    return delivery


@transaction.atomic
def do_retry_failed(project: Project, *, acting_user) -> int:
    """Try every failed delivery of the project again (verified files are
    skipped). Returns how many were queued."""
    rows = list(
        Delivery.objects.select_for_update().filter(
            destination__project=project, state=State.FAILED
        )
    )
    who = getattr(acting_user, "username", None) or "command line"
    for delivery in rows:
        _reset(delivery)
        _append_log(delivery, "retry", f"retry of failed delivery requested by {who}")
        delivery.save()
        wake(delivery.pk)
    if rows:
        log_audit(project, AuditEvent.Action.DELIVERY_CHANGED, actor=acting_user,
                  change="retry_failed", count=len(rows))  # fmt: skip
    return len(rows)


@transaction.atomic
def do_deliver_past_sessions(
    project: Project,
    *,
    since: date | None,
    until: date | None,
    destination: DeliveryDestination | None = None,
    acting_user,
) -> int:
    """Deliver finished sessions started between ``since`` and ``until``
    (inclusive, UTC dates; None = open-ended) to ``destination`` or every
    enabled destination — e.g. one added later. Files already delivered are
    not sent again. Returns how many deliveries were created or extended."""
    if destination is not None:
        if destination.project_id != project.pk:
            raise ValueError("That destination belongs to another project.")
        if not destination.enabled:
            raise ValueError(
                f"Destination {destination.name!r} is switched off; switch it on first."
            )
        destinations = [destination]
    else:
        destinations = list(project.destinations.filter(enabled=True))
    sessions = Session.objects.filter(project=project, state__in=FINISHED_SESSION_STATES)
    if since:
        sessions = sessions.filter(started_at__date__gte=since)
    if until:
        sessions = sessions.filter(started_at__date__lte=until)
    count = 0
    every_type = set(RecordingFile.Type.values)
    for session in sessions.select_related("room").order_by("started_at", "id").iterator():
        for dest in destinations:
            delivery, added = _sync_files(session, dest, every_type, final=True)
            if delivery is not None and added:
                count += 1
                if delivery.state == State.QUEUED:
                    wake(delivery.pk)
    log_audit(project, AuditEvent.Action.DELIVERY_CHANGED, actor=acting_user,
              change="deliver_past_sessions", since=str(since or ""), until=str(until or ""),
              destination=destination.name if destination else "all", count=count)  # fmt: skip
    return count


def test_destination(destination: DeliveryDestination) -> str:
    """Connect, write a probe file under the root and remove it. Returns the
    destination's message; raises TransferError with the exact reason."""
    try:
        with destination_for(destination.kind, destination.merged_config()) as dest:
            return dest.check()
    except TransferError:
        raise
    except Exception as exc:
        logger.error(
            "testing destination %s failed:\n%s",
            destination.pk,
            Scrubber(destination.secrets)(traceback.format_exc()),
        )
        raise TransferError(unexpected_error(exc, "testing the connection")) from None


# Not a pytest test, despite the name; setattr because mypy knows no function attributes.
setattr(test_destination, "__test__", False)  # noqa: B010


# --- queries for the deliveries page ------------------------------------------------


def deliveries_for(
    project: Project, *, state: str | None = None, destination: DeliveryDestination | None = None
) -> QuerySet[Delivery]:
    """The project's deliveries, newest first, ready for listing with files."""
    rows = Delivery.objects.filter(destination__project=project).select_related(
        "destination", "session__room"
    )
    if state:
        rows = rows.filter(state=state)
    if destination is not None:
        rows = rows.filter(destination=destination)
    return rows.prefetch_related("files__recording_file").order_by("-created_at", "-id")


def delivery_counts(project: Project) -> dict[str, int]:
    """The number of the project's deliveries in each state (one query)."""
    counts = {value: 0 for value in State.values}
    rows = Delivery.objects.filter(destination__project=project)
    for row in rows.values("state").annotate(n=Count("id")):
        counts[row["state"]] = row["n"]
    return counts


def webhooks_by_delivery(project: Project, deliveries) -> dict[int, list]:
    """The file_transfer and delivery_failed webhook messages of each delivery
    (keys ``delivery:<id>:file_transfer[:<generation>]`` and
    ``delivery:<id>:delivery_failed:<attempts>``), oldest first. One query,
    bounded by the deliveries asked about (a page), not the project's history."""

    from webhooks.models import WebhookMessage

    wanted = [d.pk for d in deliveries]
    if not wanted:
        return {}
    keys = Q()
    for pk in wanted:
        keys |= Q(dedupe_key__startswith=f"delivery:{pk}:")
    found: dict[int, list] = {}
    rows = WebhookMessage.objects.filter(keys, project=project).order_by("created_at", "id")
    for message in rows:
        assert message.dedupe_key is not None  # filtered on its prefix above
        found.setdefault(int(message.dedupe_key.split(":")[1]), []).append(message)
    return found


def delivery_progress(delivery: Delivery) -> dict[str, Any]:
    """JSON-ready state of one delivery, for live progress updates."""
    return {
        "id": delivery.pk,
        "state": delivery.state,
        "state_label": delivery.get_state_display(),
        "attempts": delivery.attempts,
        "percent": delivery.percent,
        "bytes_sent": delivery.bytes_sent,
        "bytes_total": delivery.bytes_total,
        "speed": delivery.speed,
        "next_attempt_at": delivery.next_attempt_at.isoformat()
        if delivery.next_attempt_at
        else None,
        "last_error": delivery.last_error,
        "files": [
            {
                "id": f.pk,
                "name": f.recording_file.name,
                "type": f.recording_file.type,
                "state": f.state,
                "size": f.recording_file.size,
                "bytes_sent": f.bytes_sent,
                "remote_path": f.remote_path,
                "error": f.error,
            }
            for f in delivery.files.select_related("recording_file").order_by("id")
        ],
    }
