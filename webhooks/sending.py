"""Sending a webhook message: one HTTP attempt through the egress guard, the
attempt logged as a WebhookAttempt row and the message settled (delivered,
retried later, or failed) by whoever holds its lease (``webhooks.outbox``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import requests
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from portal import egress
from portal.egress_http import guarded_session
from projects.models import Project

from . import outbox
from .models import WebhookAttempt, WebhookEndpoint, WebhookMessage
from .signing import signed_request

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
# Wall-clock limit of one attempt, connect + send + read: per-read timeouts
# never fire against a receiver that trickles a byte a second (one held an
# attempt for 39 s against the 10 s read timeout).
ATTEMPT_DEADLINE = 15.0
if outbox.LEASE.total_seconds() < 2 * ATTEMPT_DEADLINE:
    raise ImproperlyConfigured("The webhook LEASE must outlast an attempt's ATTEMPT_DEADLINE.")

State = WebhookMessage.State


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
    lease_until = outbox.claim(message_pk, manual=manual)
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
            next_at = outbox.next_retry_at(message, now)
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
    return attempt(outbox.create_test_message(project).pk, manual=True)
