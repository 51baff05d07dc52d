"""Webhook events of a project (Standard Webhooks signing). PLACEHOLDER
SIGNATURE — the webhook work fills this module in; callers rely only on
``queue_event``."""

from __future__ import annotations

from typing import Any

from .models import Project


def queue_event(
    project: Project, event_type: str, payload: dict[str, Any], *, dedupe_key: str | None = None
):
    """Record a webhook message for ``project`` and send it after the current
    transaction commits (retried with backoff). ``payload`` must already hold
    ``type``, ``app_id``, ``room_id`` and ``conf_num``. With ``dedupe_key``, an
    event already queued under that key is not queued again. Returns the
    WebhookMessage, or None if the project has no enabled webhook."""
    raise NotImplementedError
