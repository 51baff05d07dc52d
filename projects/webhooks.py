"""Webhook events of a project, signed per the Standard Webhooks spec.

The WebhookMessage row is the truth: ``queue_event`` records it and wakes a
django-q2 task after commit (``projects.tasks``); whoever sends it first claims it with a
conditional UPDATE (state → sending, ``next_attempt_at`` → lease expiry), so
two workers never send the same attempt. A sweep scheduled every minute
(``projects.tasks.sweep_due_messages``) sends messages whose retry is due and reclaims messages
whose sender died during its lease.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from standardwebhooks import Webhook

from portal import egress
from portal.egress_http import guarded_session
from portal.queues import enqueue_after_commit

from .models import Project, WebhookAttempt, WebhookEndpoint, WebhookMessage

logger = logging.getLogger(__name__)

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
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
# Wall-clock limit of one attempt, connect + send + read: per-read timeouts
# never fire against a receiver that trickles a byte a second (one held an
# attempt for 39 s against the 10 s read timeout).
ATTEMPT_DEADLINE = 15.0
# Longer than one attempt can take, so a live sender never loses its claim
# and no second worker sends the same message meanwhile.
LEASE = timedelta(minutes=2)
if LEASE.total_seconds() < 2 * ATTEMPT_DEADLINE:
    raise ImproperlyConfigured("The webhook LEASE must outlast an attempt's ATTEMPT_DEADLINE.")
SWEEP_BATCH = 50
SWEEP_BUDGET_SECONDS = 45.0
USER_AGENT = "RecordingDeliveryPortal-Webhooks/1"

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
        "projects.tasks.send_message_task", message.pk, task_name=f"webhook-{message.pk}"
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


# --- claiming -----------------------------------------------------------------


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


# --- sending --------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    duration_ms: int
    error: str = ""
    # Retrying cannot help (the egress guard refused the address): give up now.
    permanent: bool = False

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def describe_url(url: str) -> str:
    """host:port of the URL: safe to log (no path, query or credentials)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def signed_request(endpoint: WebhookEndpoint, message: WebhookMessage) -> tuple[bytes, dict]:
    body = json.dumps(message.payload, separators=(",", ":"), ensure_ascii=False)
    sent_at = datetime.now(tz=UTC)
    signature = Webhook(endpoint.secret).sign(message.msg_id, sent_at, body)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": message.msg_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
    }
    return body.encode(), headers


def post(endpoint: WebhookEndpoint, message: WebhookMessage) -> Outcome:
    """One HTTP attempt through the egress guard, cut at ATTEMPT_DEADLINE.
    Never raises for network trouble. Only the status code is kept: the
    receiver's body and headers are never read into a page or the log (a
    tenant could point the URL at a service to read its answers), and error
    texts are the portal's own, naming the host but never the path, query or
    credentials. Redirects are not followed."""
    body, headers = signed_request(endpoint, message)
    auth = (endpoint.basic_username, endpoint.basic_password) if endpoint.basic_username else None
    where = describe_url(endpoint.url)
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    with egress.deadline(ATTEMPT_DEADLINE) as limit, guarded_session() as session:
        try:
            with session.post(
                endpoint.url,
                data=body,
                headers=headers,
                auth=auth,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                stream=True,  # the body is never read
            ) as response:
                status = response.status_code
        except egress.OutboundRefused as exc:
            return Outcome(None, elapsed(), exc.message, permanent=True)
        except requests.exceptions.RequestException as exc:
            return Outcome(None, elapsed(), _failure(exc, where, expired=limit.expired))
    error = ""
    if not 200 <= status < 300:
        error = f"{where} answered HTTP {status}; a 2xx status is needed"
        if 300 <= status < 400:
            error += " (redirects are not followed: give the final URL)"
        if status == 401:
            error += " (check the Basic username and password)"
    return Outcome(status, elapsed(), error)


def _failure(exc: requests.exceptions.RequestException, where: str, *, expired: bool) -> str:
    if expired:
        return f"{where} did not complete its answer within {ATTEMPT_DEADLINE:g} s"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"Timed out connecting to {where} after {CONNECT_TIMEOUT:g} s"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return f"{where} did not answer within {READ_TIMEOUT:g} s"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS handshake with {where} failed; check its certificate"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"Could not connect to {where}; is the receiver running?"
    return f"Request to {where} failed ({type(exc).__name__})"


def attempt(message_pk: int, *, manual: bool = False) -> WebhookAttempt | None:
    """Claim the message, send it once and record the outcome. Returns the
    logged attempt, or None when the message was not ours to send."""
    lease_until = claim(message_pk, manual=manual)
    if lease_until is None:
        return None
    message = WebhookMessage.objects.select_related("project").get(pk=message_pk)
    endpoint = WebhookEndpoint.objects.filter(project_id=message.project_id).first()
    if endpoint is None or not (endpoint.enabled or manual):
        outcome = Outcome(None, 0, "The project's webhook is disabled or not configured")
    else:
        outcome = post(endpoint, message)
    return record_outcome(message, lease_until, outcome, manual=manual)


def record_outcome(
    message: WebhookMessage, lease_until: datetime, outcome: Outcome, *, manual: bool
) -> WebhookAttempt:
    now = timezone.now()
    with transaction.atomic():
        logged = WebhookAttempt.objects.create(
            message=message,
            status_code=outcome.status_code,
            duration_ms=outcome.duration_ms,
            error=outcome.error[:500],
            manual=manual,
        )
        message.attempts += 1
        if outcome.ok:
            state, next_at = State.DELIVERED, None
        elif outcome.permanent:
            state, next_at = State.FAILED, None
        else:
            next_at = next_retry_at(message, now)
            state = State.RETRY if next_at else State.FAILED
        # Only the holder of this lease may finish the message.
        WebhookMessage.objects.filter(
            pk=message.pk, state=State.SENDING, next_attempt_at=lease_until
        ).update(state=state, next_attempt_at=next_at, attempts=message.attempts)
    message.state, message.next_attempt_at = state, next_at
    log = logger.info if outcome.ok else logger.warning
    log(
        "webhook %s (%s) attempt %d: %s -> %s",
        message.msg_id,
        message.event_type,
        message.attempts,
        outcome.status_code or outcome.error,
        state,
    )
    return logged


# --- actions from the portal and the CLI ----------------------------------------


def resend(message: WebhookMessage) -> WebhookAttempt | None:
    """Send the message again now, under the same ``webhook-id``. Returns None
    if it is being sent at this moment."""
    return attempt(message.pk, manual=True)


def send_test_event(project: Project) -> WebhookAttempt | None:
    """Send a ``test`` event synchronously (one attempt, never retried)."""
    if not WebhookEndpoint.objects.filter(project=project).exists():
        return None
    message = WebhookMessage.objects.create(
        project=project,
        event_type="test",
        payload=payload_for_test_event(project),
        next_attempt_at=timezone.now(),
    )
    return attempt(message.pk, manual=True)
