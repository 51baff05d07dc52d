"""Retention removes old files' bytes and marks them expired, except while a
delivery of them is still to happen."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.storage import storages
from django.utils import timezone
from django_q.models import Schedule

from delivery.models import DeliveredFile, Delivery, DeliveryDestination
from recordings.models import RecordingFile, Session
from recordings.retention import SCHEDULE_NAME, expire_old_files
from tests.recordings.seed import add_file, make_room, make_session

OLD = timezone.now() - timedelta(hours=73)


@pytest.fixture
def session(world):
    return make_session(make_room(world.project))


def exists(rf: RecordingFile) -> bool:
    return storages["recordings"].exists(rf.storage_path)


def deliver(rf: RecordingFile, delivery_state: str, file_state: str) -> None:
    destination, _ = DeliveryDestination.objects.get_or_create(
        project=rf.project, name="nas", defaults={"kind": "local", "file_types": ["individual"]}
    )
    delivery, _ = Delivery.objects.get_or_create(
        session=rf.session, destination=destination, defaults={"state": delivery_state}
    )
    DeliveredFile.objects.create(delivery=delivery, recording_file=rf, state=file_state)


def test_files_past_retention_are_removed_and_marked(session):
    old = add_file(session, "transcoded", "old.mp4", b"old", created_at=OLD, poster=b"jpg")
    new = add_file(session, "chat", "new.json", b"[]")
    assert expire_old_files() == 1
    old.refresh_from_db()
    new.refresh_from_db()
    assert old.is_expired and not exists(old)
    assert not storages["recordings"].exists(old.poster_path)
    assert not new.is_expired and exists(new)
    assert expire_old_files() == 0


def test_zero_hours_keeps_everything(settings, session):
    settings.RECORDING_RETENTION_HOURS = 0
    rf = add_file(session, "individual", "a.mp4", b"a", created_at=OLD - timedelta(days=900))
    assert expire_old_files() == 0
    assert exists(rf)


@pytest.mark.parametrize(
    "delivery_state, file_state",
    [
        (Delivery.State.QUEUED, DeliveredFile.State.PENDING),
        (Delivery.State.RUNNING, DeliveredFile.State.UPLOADING),
        (Delivery.State.RETRY_WAIT, DeliveredFile.State.PENDING),
    ],
)
def test_files_waiting_for_delivery_are_kept(session, delivery_state, file_state):
    rf = add_file(session, "individual", "a.mp4", b"a", created_at=OLD)
    deliver(rf, delivery_state, file_state)
    assert expire_old_files() == 0
    assert exists(rf)


@pytest.mark.parametrize(
    "delivery_state, file_state",
    [
        (Delivery.State.DELIVERED, DeliveredFile.State.VERIFIED),
        (Delivery.State.FAILED, DeliveredFile.State.FAILED),
        (Delivery.State.RETRY_WAIT, DeliveredFile.State.VERIFIED),
    ],
)
def test_delivered_or_given_up_files_expire(session, delivery_state, file_state):
    rf = add_file(session, "individual", "a.mp4", b"a", created_at=OLD)
    deliver(rf, delivery_state, file_state)
    assert expire_old_files() == 1
    assert not exists(rf)


def test_sessions_still_being_processed_keep_their_files(session):
    Session.objects.filter(pk=session.pk).update(
        state=Session.State.PROCESSING, started_at=timezone.now() - timedelta(hours=1)
    )
    rf = add_file(session, "individual", "a.mp4", b"a", created_at=OLD)
    assert expire_old_files() == 0
    assert exists(rf)


@pytest.mark.parametrize("state", [Session.State.LIVE, Session.State.PROCESSING])
def test_sessions_left_live_or_processing_past_retention_expire_like_the_others(world, state):
    room = make_room(world.project)
    abandoned = make_session(room, state=state, started_at=OLD)
    current = make_session(room, state=state, started_at=timezone.now() - timedelta(hours=2))
    old_file = add_file(abandoned, "individual", "a.mp4", b"a", created_at=OLD)
    # A file of a session still in progress stays, even when older than retention.
    kept = add_file(current, "individual", "b.mp4", b"b", created_at=OLD)
    assert expire_old_files() == 1
    old_file.refresh_from_db()
    abandoned.refresh_from_db()
    assert old_file.is_expired and not exists(old_file) and exists(kept)
    assert abandoned.state == Session.State.FAILED and abandoned.ended_at is not None
    assert "Abandoned: still live or processing after 72 hours" in abandoned.processing_error
    current.refresh_from_db()
    assert current.state == state


def test_many_files_expire_in_batches(session, monkeypatch):
    monkeypatch.setattr("recordings.retention.BATCH", 3)
    for i in range(7):
        add_file(session, "individual", f"{i}.mp4", b"a", created_at=OLD)
    assert expire_old_files() == 7
    assert not RecordingFile.objects.filter(expired_at__isnull=True).exists()


def test_an_hourly_schedule_exists(db):
    schedule = Schedule.objects.get(name=SCHEDULE_NAME)
    assert schedule.func == "recordings.tasks.run_retention"
    assert schedule.schedule_type == Schedule.HOURLY
