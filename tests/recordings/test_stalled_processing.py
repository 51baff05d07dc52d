from __future__ import annotations

from datetime import timedelta

import time_machine
from django.utils import timezone
from django_q.conf import Conf

from recordings.models import Session
from recordings.tasks import requeue_stalled_processing
from tests.factories import make_session


def test_a_session_whose_worker_died_is_processed_again(world, monkeypatch, settings):
    monkeypatch.setattr(Conf, "SYNC", True)
    session = make_session(world.project, state=Session.State.PROCESSING)
    Session.objects.filter(pk=session.pk).update(ended_at=timezone.now())

    assert requeue_stalled_processing() == 0  # still within its time

    later = timezone.now() + timedelta(seconds=settings.Q_CLUSTER["retry"] + 60)
    with time_machine.travel(later, tick=False):
        assert requeue_stalled_processing() == 1
    session.refresh_from_db()
    # No individual recordings: processing finishes at once.
    assert session.state == Session.State.READY
    assert session.ended_at < later


def test_ready_and_failed_sessions_are_left_alone(world):
    make_session(world.project, state=Session.State.READY, ended_at=timezone.now() - timedelta(days=2))
    make_session(world.project, state=Session.State.FAILED, ended_at=timezone.now() - timedelta(days=2))
    assert requeue_stalled_processing() == 0
