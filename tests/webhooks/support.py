"""Helpers of the webhook tests."""

from __future__ import annotations

import time_machine

from webhooks import outbox, tasks
from webhooks.models import WebhookMessage

State = WebhookMessage.State


def event(world, event_type="recording", **extra):
    payload = {"type": event_type, "app_id": world.app_id, "room_id": "r1", "conf_num": "c1"}
    return outbox.queue_event(world.project, event_type, {**payload, **extra})


def run_until_settled(message: WebhookMessage, start) -> list:
    """Follow the retry schedule with a time machine; return the attempt times."""
    times = []
    when = start
    for _ in range(30):
        with time_machine.travel(when, tick=False):
            tasks.sweep_due_messages()
        message.refresh_from_db()
        times.append(when)
        if message.state != State.RETRY:
            return times
        when = message.next_attempt_at
    raise AssertionError("the message never settled")
