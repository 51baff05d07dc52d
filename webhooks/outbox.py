"""The outbox: a project's webhook events, one WebhookMessage row each.

The row is the truth: ``queue_event`` records it in the caller's transaction
and wakes a django-q2 task after commit (``webhooks.tasks``); whoever sends it
first claims it with a conditional UPDATE (state → sending,
``next_attempt_at`` → lease expiry), so two workers never send the same
attempt. A sweep scheduled every minute (``webhooks.tasks.sweep_due_messages``)
sends messages whose retry is due and reclaims messages whose sender died
during its lease. Sending itself is ``webhooks.sending``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from portal.queues import enqueue_after_commit
from projects.models import Project

from .models import WebhookEndpoint, WebhookMessage

EVENT_TYPES = (
    "recording",
    "transcoded",
    "live_recording",
    "recording_state",
    "file_transfer",
    "delivery_failed",
    "test",
)
REQUIRED_KEYS = ("type", "app_id", "room_id", "conf_num")
# The events an endpoint may choose (the test event is always sent).
SELECTABLE_EVENT_TYPES = tuple(t for t in EVENT_TYPES if t != "test")
# ``type`` as EnableX's older notification docs spell it, for endpoints that
# ask for it (the event's own name stays the reference's).
LEGACY_EVENT_NAMES = {"file_transfer": "file-transfer"}

# Delay before attempt n+1 after attempt n failed; the last one repeats.
BACKOFF = (
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=4),
    timedelta(hours=8),
)
# A message that still fails this long after it was created is given up.
GIVE_UP_AFTER = timedelta(hours=24)
# Longer than one attempt can take (``sending.ATTEMPT_DEADLINE``, checked
# there), so a live sender never loses its claim and no second worker sends
# the same message meanwhile.
LEASE = timedelta(minutes=2)
SWEEP_BATCH = 50
SWEEP_BUDGET_SECONDS = 45.0

State = WebhookMessage.State


def queue_event(
    project: Project, event_type: str, payload: dict[str, Any], *, dedupe_key: str | None = None
):
    """Record a webhook message for ``project`` and send it after the current
    transaction commits (retried with backoff). ``payload`` must already hold
    ``type``, ``app_id``, ``room_id`` and ``conf_num``. With ``dedupe_key``, an
    event already queued under that key is not queued again. Returns the
    WebhookMessage, or None if the project has no enabled webhook."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"Unknown webhook event type {event_type!r}; use one of {EVENT_TYPES}.")
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise ValueError(f"Webhook payload for {event_type!r} lacks {', '.join(missing)}.")
    endpoint = (
        WebhookEndpoint.objects.filter(project=project, enabled=True)
        .only("events", "legacy_event_names")
        .first()
    )
    # A test event is sent whatever the selection: it tests the endpoint.
    if endpoint is None or (event_type != "test" and not endpoint.wants(event_type)):
        return None
    if endpoint.legacy_event_names and payload.get("type") in LEGACY_EVENT_NAMES:
        payload = {**payload, "type": LEGACY_EVENT_NAMES[payload["type"]]}
    if dedupe_key:
        existing = WebhookMessage.objects.filter(dedupe_key=dedupe_key).first()
        if existing is not None:
            return existing
    message = WebhookMessage(
        project=project,
        event_type=event_type,
        payload=payload,
        dedupe_key=dedupe_key or None,
        next_attempt_at=timezone.now(),
    )
    try:
        with transaction.atomic():
            message.save()
    except IntegrityError:
        # Lost a race with another writer of the same event.
        if not dedupe_key:
            raise
        return WebhookMessage.objects.get(dedupe_key=dedupe_key)
    enqueue_after_commit(
        "webhooks.tasks.send_message_task", message.pk, task_name=f"webhook-{message.pk}"
    )
    return message


def payload_for_test_event(project: Project) -> dict[str, Any]:
    return {
        "type": "test",
        "app_id": project.app_id,
        "room_id": None,
        "conf_num": None,
        "trans_date": int(timezone.now().timestamp()),
        "message": "Test event from the Recording Delivery Portal.",
    }


def create_test_message(project: Project) -> WebhookMessage:
    """A ``test`` message, due now; sent at once by whoever created it."""
    return WebhookMessage.objects.create(
        project=project,
        event_type="test",
        payload=payload_for_test_event(project),
        next_attempt_at=timezone.now(),
    )


# --- claiming and settling ------------------------------------------------------


def claim(message_pk: int, *, now: datetime | None = None, manual: bool = False) -> datetime | None:
    """Atomically take the message for sending. Returns the lease expiry, or
    None if the message is not due or someone else holds it. A manual claim
    (resend) ignores the schedule and the final states but never steals a
    live lease."""
    now = now or timezone.now()
    lease_until = now + LEASE
    live_lease = Q(state=State.SENDING, next_attempt_at__gt=now)
    if manual:
        rows = WebhookMessage.objects.filter(pk=message_pk).exclude(live_lease)
    else:
        rows = WebhookMessage.objects.filter(
            pk=message_pk,
            state__in=[State.PENDING, State.RETRY, State.SENDING],
            next_attempt_at__lte=now,
        )
    updated = rows.update(state=State.SENDING, next_attempt_at=lease_until)
    return lease_until if updated == 1 else None


def next_retry_at(message: WebhookMessage, failed_at: datetime) -> datetime | None:
    """When to try again after ``message.attempts`` failed attempts, or None
    once retrying has lasted longer than GIVE_UP_AFTER."""
    if failed_at - message.created_at >= GIVE_UP_AFTER or message.event_type == "test":
        return None
    step = BACKOFF[min(max(message.attempts, 1), len(BACKOFF)) - 1]
    return failed_at + step


def due_message_ids() -> list[int]:
    """The messages whose attempt is due (a sweep's batch), oldest due first,
    including ones whose sender's lease ran out."""
    due = (
        WebhookMessage.objects.filter(
            state__in=[State.PENDING, State.RETRY, State.SENDING],
            next_attempt_at__lte=timezone.now(),
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    return list(due)
