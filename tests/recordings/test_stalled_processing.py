from __future__ import annotations

from datetime import timedelta

import time_machine
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ

from recordings import processing
from recordings.models import Session
from recordings.tasks import requeue_stalled_processing
from tests.factories import make_session


def test_a_session_whose_worker_died_is_processed_again(
    world, monkeypatch, settings, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(Conf, "SYNC", True)
    session = make_session(world.project, state=Session.State.PROCESSING)
    Session.objects.filter(pk=session.pk).update(ended_at=timezone.now())

    assert requeue_stalled_processing() == 0  # still within its time

    later = timezone.now() + timedelta(seconds=settings.Q_CLUSTER["retry"] + 60)
    # The sweep runs outside any transaction: what it queues goes at once.
    with time_machine.travel(later, tick=False), django_capture_on_commit_callbacks(execute=True):
        assert requeue_stalled_processing() == 1
    session.refresh_from_db()
    # No individual recordings: processing finishes at once.
    assert session.state == Session.State.READY
    assert session.ended_at < later


def test_ready_and_failed_sessions_are_left_alone(world):
    make_session(
        world.project, state=Session.State.READY, ended_at=timezone.now() - timedelta(days=2)
    )
    make_session(
        world.project, state=Session.State.FAILED, ended_at=timezone.now() - timedelta(days=2)
    )
    assert requeue_stalled_processing() == 0


def test_a_session_whose_runs_keep_stalling_fails_instead_of_being_queued_for_ever(
    world, settings, django_capture_on_commit_callbacks
):
    """A file that kills or outlasts every worker: each run is counted, the
    sweep queues it again twice, then fails it with the reason."""
    session = make_session(world.project, state=Session.State.PROCESSING)
    Session.objects.filter(pk=session.pk).update(ended_at=timezone.now())
    step = timedelta(seconds=settings.Q_CLUSTER["retry"] + 60)
    now = timezone.now()
    queued = []
    for run in range(1, 4):
        with time_machine.travel(now, tick=False):
            processing._start_attempt(session.pk)  # a worker starts, then dies
        now += step
        with time_machine.travel(now, tick=False):
            before = OrmQ.objects.count()
            with django_capture_on_commit_callbacks(execute=True):
                found = requeue_stalled_processing()
            queued.append(OrmQ.objects.count() - before)
        session.refresh_from_db()
        assert session.processing_attempts == run
        assert found == 1
    assert queued == [1, 1, 0]
    assert session.state == Session.State.FAILED
    assert session.processing_error.startswith("Processing did not finish in 3 attempts")

    # Nothing is queued again, however long it waits.
    with time_machine.travel(now + 10 * step, tick=False):
        assert requeue_stalled_processing() == 0
