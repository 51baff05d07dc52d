"""What people (the deliveries page) and scripts (``manage.py delivery``)
do to deliveries: send one again, retry the failed ones, deliver past
sessions. Each is audited and wakes workers only after commit."""

from __future__ import annotations

from datetime import date

from django.db import transaction
from django.utils import timezone

from projects.audit import log_audit
from projects.models import AuditEvent, Project
from recordings.models import RecordingFile, Session

from ..leftovers import mark_for_fresh_start
from ..models import DeliveredFile, Delivery, DeliveryDestination
from ..scheduling import FINISHED_SESSION_STATES, append_log, sync_files, wake

State = Delivery.State
FileState = DeliveredFile.State


def _reset(delivery: Delivery) -> None:
    delivery.state = State.QUEUED
    delivery.attempts = 0
    delivery.next_attempt_at = timezone.now()
    delivery.lease_owner = ""
    delivery.lease_expires_at = None
    delivery.last_error = ""
    delivery.finished_at = None


@transaction.atomic
def do_redeliver_delivery(delivery: Delivery, *, acting_user) -> Delivery:
    """Send every file of the delivery again (also files of its types that
    appeared since), as a new generation with its own single file_transfer.
    A run under way loses its lease and stops."""
    delivery = Delivery.objects.select_related("session", "destination").get(pk=delivery.pk)
    session = delivery.session
    sync_files(session, delivery.destination, set(RecordingFile.Type.values),
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
    append_log(delivery, "redeliver", f"redelivery requested by {who}")
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
        append_log(delivery, "retry", f"retry of failed delivery requested by {who}")
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
            delivery, added = sync_files(session, dest, every_type, final=True)
            if delivery is not None and added:
                count += 1
                if delivery.state == State.QUEUED:
                    wake(delivery.pk)
    log_audit(project, AuditEvent.Action.DELIVERY_CHANGED, actor=acting_user,
              change="deliver_past_sessions", since=str(since or ""), until=str(until or ""),
              destination=destination.name if destination else "all", count=count)  # fmt: skip
    return count
