"""django-q2 tasks of the projects app: they take ids and call
``projects.webhooks``."""

from __future__ import annotations

import time

from django.utils import timezone

from . import webhooks
from .models import WebhookMessage

State = WebhookMessage.State


def send_message_task(message_pk: int) -> str:
    """Send a freshly queued message if it is still due."""
    logged = webhooks.attempt(message_pk)
    return "not due" if logged is None else f"status {logged.status_code or logged.error}"


def sweep_due_messages() -> int:
    """django-q2 schedule (every minute): send every message whose attempt is
    due, including ones whose sender's lease ran out. Bounded in time so a
    slow receiver cannot pile up overlapping sweeps."""
    started = time.monotonic()
    sent = 0
    due = (
        WebhookMessage.objects.filter(
            state__in=[State.PENDING, State.RETRY, State.SENDING],
            next_attempt_at__lte=timezone.now(),
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[: webhooks.SWEEP_BATCH]
    )
    for pk in list(due):
        if time.monotonic() - started > webhooks.SWEEP_BUDGET_SECONDS:
            break
        if webhooks.attempt(pk) is not None:
            sent += 1
    return sent
