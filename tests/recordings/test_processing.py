"""Processing of an ended session against the real ffmpeg (small, short media)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from delivery.models import Delivery
from projects.models import Room
from recordings import processing
from recordings.media import probe
from recordings.models import RecordingFile, Session
from recordings.samples import generate_participant_media
from recordings.tasks import process_session_task
from tests import media_samples
from tests.delivery.engine_support import local_destination
from tests.factories import make_recording
from webhooks.models import WebhookMessage

from .ingest_client import Ingest, enable_webhook

pytestmark = pytest.mark.django_db
SMALL = {"width": 160, "height": 90, "preset": "ultrafast"}


@pytest.fixture
def ingest(client, world) -> Ingest:
    return Ingest(client, world.app_id, world.created.app_key)


@pytest.fixture
def session(ingest, world) -> Session:
    room = Room.objects.create(project=world.project, name="standup")
    return Session.objects.get(conf_num=ingest.start(room))


@pytest.fixture
def small_composite(monkeypatch):
    """Keep the composite small so the test stays fast (same code path)."""
    real = processing.media.make_composite
    monkeypatch.setattr(
        processing.media,
        "make_composite",
        lambda inputs, output, **kwargs: real(
            inputs, output, width=320, height=180, preset="ultrafast", **kwargs
        ),
    )


def upload(ingest, conf_num, path: Path, participant: str):
    with open(path, "rb") as fh:
        response = ingest.upload(conf_num, fh, participant=participant)
    assert response.status_code == 201, response.content


@pytest.mark.slow
def test_three_participants_are_merged_into_a_transcoded_mp4(
    ingest, world, session, tmp_path, settings, small_composite
):
    enable_webhook(world.project)
    lengths = {"Alice": 3.0, "Bob": 4.5, "Carol": 6.0}
    for index, (name, seconds) in enumerate(lengths.items()):
        path = tmp_path / f"{name.lower()}.mp4"
        generate_participant_media(path, name=name, seconds=seconds, index=index, **SMALL)
        upload(ingest, session.conf_num, path, name)
    ingest.upload(session.conf_num, SimpleUploadedFile("chat.json", b"[]"), file_type="chat")
    assert ingest.end(session.conf_num).status_code == 200

    assert process_session_task(session.pk) == "ready"

    session.refresh_from_db()
    assert session.state == Session.State.READY and session.processing_error == ""
    assert session.duration_seconds == pytest.approx(6.0, abs=1.0)
    assert session.participant_count == 3
    transcoded = RecordingFile.objects.get(session=session, type="transcoded")
    assert transcoded.name == "transcoded.mp4"
    assert session.total_size == sum(f.size for f in session.files.all())
    stored = Path(settings.RECORDINGS_ROOT) / transcoded.storage_path
    assert stored.stat().st_size == transcoded.size
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == transcoded.sha256
    info = probe(stored)
    assert info.has_video and info.has_audio and info.video_codec == "h264"
    assert info.duration == pytest.approx(6.0, abs=1.0)
    assert transcoded.duration_seconds == pytest.approx(info.duration, abs=0.1)
    poster = Path(settings.RECORDINGS_ROOT) / transcoded.poster_path
    assert poster.read_bytes()[:2] == b"\xff\xd8"
    event = WebhookMessage.objects.get(event_type="transcoded").payload
    assert event["conf_num"] == session.conf_num
    # EnableX's shape: the composite's URL as a string, its stage and size.
    assert event["recording"] == transcoded.public_url
    assert event["stage"] == "completed" and event["file_size"] == transcoded.size
    assert event["files"][0]["sha256"] == transcoded.sha256
    assert isinstance(event["trans_date"], int)
    assert not list((Path(settings.DATA_DIR) / "tmp" / "processing").iterdir())

    # A second run (e.g. a re-queued task) changes nothing.
    assert process_session_task(session.pk) == "ready"
    assert RecordingFile.objects.filter(session=session, type="transcoded").count() == 1


def test_broken_recordings_fail_visibly(ingest, world, session, settings, caplog):
    # Stored directly: the ingest API refuses such a file at the door.
    make_recording(world.project, session=session, name="alice.mp4", content=b"not a video")
    ingest.end(session.conf_num)

    assert process_session_task(session.pk) == "failed"

    session.refresh_from_db()
    assert session.state == Session.State.FAILED
    assert session.processing_error == (
        "alice.mp4 is data ffmpeg does not recognise as media, not a recording in an allowed format"
    )
    assert session.processing_attempts == 1
    assert not RecordingFile.objects.filter(session=session, type="transcoded").exists()
    assert any("failed" in record.message for record in caplog.records)
    assert not list((Path(settings.DATA_DIR) / "tmp" / "processing").iterdir())


def test_sessions_without_individual_recordings_are_ready_at_once(ingest, session):
    ingest.upload(session.conf_num, SimpleUploadedFile("chat.json", b"[]"), file_type="chat")
    ingest.end(session.conf_num)
    assert process_session_task(session.pk) == "ready"
    session.refresh_from_db()
    assert session.duration_seconds is None and session.total_size == 2


def test_live_sessions_are_not_processed(session):
    assert process_session_task(session.pk) == "live"


def test_a_playlist_in_the_store_fails_processing_and_delivery_goes_on(
    ingest, world, session, tmp_path, django_capture_on_commit_callbacks
):
    """An HLS playlist stored before the door checked uploads, naming another
    tenant's recording: processing opens it only as media, so it fails with
    the reason, and the files the session has still go to delivery."""
    other = make_recording(world.project, content=media_samples.recording(index=3))
    from django.core.files.storage import storages

    secret = storages["recordings"].path(other.storage_path)
    make_recording(world.project, session=session, name="alice.mp4",
                   content=media_samples.hls_playlist(secret))  # fmt: skip
    make_recording(world.project, session=session, name="bob.mp4",
                   content=media_samples.recording(index=1))  # fmt: skip
    destination = local_destination(world.project, tmp_path / "nas", types=("individual",))
    ingest.end(session.conf_num)

    with django_capture_on_commit_callbacks(execute=True):
        assert process_session_task(session.pk) == "failed"

    session.refresh_from_db()
    assert "an HLS playlist" in session.processing_error
    assert not session.files.filter(type="transcoded").exists()
    delivery = Delivery.objects.get(session=session, destination=destination)
    names = set(delivery.files.values_list("recording_file__name", flat=True))
    assert names == {"alice.mp4", "bob.mp4"}


def test_a_recording_over_the_duration_limit_is_not_encoded(ingest, world, session, settings):
    make_recording(world.project, session=session, name="alice.mkv",
                   content=media_samples.claiming_duration(100 * 3600))  # fmt: skip
    ingest.end(session.conf_num)
    assert process_session_task(session.pk) == "failed"
    session.refresh_from_db()
    assert "lasts 100.0 h, longer than the limit of 6.0 h (MEDIA_MAX_SECONDS)" in (
        session.processing_error
    )
    assert not list((Path(settings.DATA_DIR) / "tmp" / "processing").iterdir())


@pytest.fixture
def with_recording(ingest, session):
    """A session with something to process (one without is ready at its end)."""
    response = ingest.upload(
        session.conf_num, SimpleUploadedFile("alice.mp4", media_samples.recording()),
        participant="alice",
    )  # fmt: skip
    assert response.status_code == 201, response.content
    return session


def test_a_session_with_nothing_to_merge_is_ready_at_its_end(ingest, session):
    ingest.end(session.conf_num)
    session.refresh_from_db()
    assert session.state == Session.State.READY and session.processing_attempts == 0


def test_each_run_is_counted_and_the_fourth_gives_up(ingest, world, with_recording):
    session = with_recording
    ingest.end(session.conf_num)
    # Three runs that never finished (worker killed mid-composite).
    Session.objects.filter(pk=session.pk).update(processing_attempts=3)

    assert process_session_task(session.pk) == "failed"

    session.refresh_from_db()
    assert session.processing_attempts == 3
    assert session.processing_error.startswith("Processing did not finish in 3 attempts")


def test_a_failed_session_shows_its_reason_in_the_report_and_the_archive(
    client, ingest, world, with_recording
):
    session = with_recording
    ingest.end(session.conf_num)
    Session.objects.filter(pk=session.pk).update(processing_attempts=3)
    process_session_task(session.pk)

    client.force_login(world.alice)
    page = client.get(f"/projects/{world.app_id}/recordings/").content.decode()
    assert "Processing failed" in page and "Processing did not finish in 3 attempts" in page
    archive = ingest.client.get(f"/video/v2/archive/conf_num/{session.conf_num}", **ingest.auth)
    [entry] = archive.json()["archive"]
    assert entry["state"] == "failed"
    assert entry["failure_reason"].startswith("Processing did not finish in 3 attempts")
