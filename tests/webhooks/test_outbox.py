"""The outbox: one row per event, queued once, claimed by one worker, retried
with backoff by the sweep until delivered or given up."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from django_q.models import Schedule

from webhooks import outbox, tasks
from webhooks.actions import do_configure_webhook
from webhooks.models import WebhookMessage

from .support import State, event, run_until_settled


def test_retries_back_off_and_give_up_after_more_than_24_hours(world, hook, webhook_receiver):
    webhook_receiver.fail_next(100, status=503)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        message = event(world)
    times = run_until_settled(message, start)
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert gaps[:8] == list(outbox.BACKOFF)
    assert all(gap == timedelta(hours=8) for gap in gaps[8:])
    assert message.state == State.FAILED and message.next_attempt_at is None
    assert times[-2] - start < timedelta(hours=24) < times[-1] - start
    assert message.attempt_log.count() == len(times) == len(webhook_receiver.requests)


def test_a_dedupe_key_prevents_duplicates(world, hook, django_capture_on_commit_callbacks):
    payload = {"type": "file_transfer", "app_id": world.app_id, "room_id": "r", "conf_num": "c"}
    with django_capture_on_commit_callbacks() as callbacks:
        first = outbox.queue_event(world.project, "file_transfer", payload, dedupe_key="d:1")
        again = outbox.queue_event(world.project, "file_transfer", payload, dedupe_key="d:1")
    assert first.pk == again.pk
    assert WebhookMessage.objects.filter(dedupe_key="d:1").count() == 1
    assert len(callbacks) == 1


def test_a_dedupe_race_is_settled_by_the_unique_constraint(world, hook, monkeypatch):
    existing = event(world)
    WebhookMessage.objects.filter(pk=existing.pk).update(dedupe_key="race")
    # The other writer committed between our look-up and our insert.
    monkeypatch.setattr(
        WebhookMessage.objects, "filter", lambda **kw: WebhookMessage.objects.none()
    )
    payload = {"type": "recording", "app_id": world.app_id, "room_id": "r", "conf_num": "c"}
    again = outbox.queue_event(world.project, "recording", payload, dedupe_key="race")
    monkeypatch.undo()
    assert again.pk == existing.pk
    assert WebhookMessage.objects.count() == 1


def test_only_one_of_two_workers_claims_a_message(world, hook):
    message = event(world)
    assert outbox.claim(message.pk) is not None
    assert outbox.claim(message.pk) is None
    assert outbox.claim(message.pk, manual=True) is None


def test_a_message_whose_sender_died_is_sent_after_the_lease(world, hook, webhook_receiver):
    message = event(world)
    assert outbox.claim(message.pk) is not None  # ... and the worker was killed
    assert tasks.sweep_due_messages() == 0
    with time_machine.travel(timezone.now() + outbox.LEASE + timedelta(seconds=1)):
        assert tasks.sweep_due_messages() == 1
    message.refresh_from_db()
    assert message.state == State.DELIVERED and message.attempts == 1


def test_nothing_is_queued_without_an_enabled_webhook(world):
    assert event(world) is None
    do_configure_webhook(
        world.project, url="https://example.com/h", enabled=False, acting_user=None
    )
    assert event(world) is None
    assert not WebhookMessage.objects.exists()


def test_it_refuses_unknown_event_types_and_incomplete_payloads(world, hook):
    with pytest.raises(ValueError, match="Unknown webhook event type"):
        outbox.queue_event(world.project, "bogus", {})
    with pytest.raises(ValueError, match="lacks room_id, conf_num"):
        outbox.queue_event(world.project, "recording", {"type": "recording", "app_id": "a"})


def test_the_sweep_is_scheduled_every_minute_by_a_migration(db):
    schedule = Schedule.objects.get(name="webhook-sweep")
    assert schedule.func == "webhooks.tasks.sweep_due_messages"
    assert (schedule.schedule_type, schedule.minutes) == (Schedule.MINUTES, 1)
