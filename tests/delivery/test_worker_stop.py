"""A worker told to stop (SIGTERM, portal/workers.py) lets go of its work:
a running delivery hands its lease back at the next chunk and is woken for
another worker, which resumes it; tasks not yet started are queued again."""

from __future__ import annotations

import threading

import pytest
from django_q.conf import Conf
from django_q.models import OrmQ

from delivery import engine, scheduling
from delivery.models import Delivery
from portal import workers
from recordings.models import Session
from recordings.tasks import process_session_task
from tests.delivery import engine_support
from tests.delivery.engine_support import local_destination, make_session

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("local_roots")]
flaky = engine_support.flaky
MB = 1024 * 1024


@pytest.fixture
def stopping(monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", False)  # wake-ups land in the queue, not in this thread
    yield workers.stopping
    workers.stopping.clear()


def queued() -> list[tuple[str, str]]:
    return sorted((row.key, row.task["func"]) for row in OrmQ.objects.all())


def test_a_running_delivery_is_handed_back_at_the_next_chunk_and_resumed_elsewhere(
    world, tmp_path, flaky, stopping
):
    session = make_session(world.project, {"transcoded.mp4": ("transcoded", 20 * MB)})
    local_destination(world.project, tmp_path / "nas", kind="flaky", write_manifest=False)
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = Delivery.objects.get()
    OrmQ.objects.all().delete()
    flaky.hold = True
    outcome: dict[str, str] = {}
    run = threading.Thread(target=lambda: outcome.update(result=engine.run_delivery(delivery.pk)))
    run.start()
    assert flaky.started.wait(10)
    stopping.set()  # what the worker's SIGTERM handler does
    flaky.release.set()
    run.join(30)
    assert outcome["result"] == "handed back: the worker is stopping"
    delivery.refresh_from_db()
    assert (delivery.state, delivery.lease_owner, delivery.lease_expires_at) == ("queued", "", None)
    assert queued() == [("portal", "delivery.tasks.run_delivery")]
    target = tmp_path / "nas" / "recordings" / session.room.room_id / session.conf_num
    assert not target.exists() or list(target.iterdir()) == []  # nothing half-written

    # Another worker (not stopping) claims it and delivers.
    stopping.clear()
    flaky.hold = False
    assert engine.run_delivery(delivery.pk) == "delivered"
    assert [(p.name, p.stat().st_size) for p in target.iterdir()] == [("transcoded.mp4", 20 * MB)]


def test_a_stopping_worker_queues_again_what_it_has_not_started(
    world, tmp_path, stopping, django_capture_on_commit_callbacks
):
    session = make_session(world.project, {"chat.json": ("chat", b"[]")}, state="processing")
    local_destination(world.project, tmp_path / "nas", types=("chat",))
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = Delivery.objects.get()
    OrmQ.objects.all().delete()
    stopping.set()
    assert engine.run_delivery(delivery.pk) == "left for another worker: this one is stopping"
    # A task runs outside any transaction: what it queues goes at once.
    with django_capture_on_commit_callbacks(execute=True):
        assert process_session_task(session.pk) == "queued again: the worker is stopping"
    assert queued() == [
        ("portal", "delivery.tasks.run_delivery"),
        ("processing", "recordings.tasks.process_session_task"),
    ]
    delivery.refresh_from_db()
    assert delivery.state == "queued" and delivery.attempts == 0
    assert Session.objects.get(pk=session.pk).state == "processing"
