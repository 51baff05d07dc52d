"""Processing of an ended session against the real ffmpeg (small, short media)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from projects.models import Room, WebhookMessage
from recordings import processing
from recordings.media import probe
from recordings.models import RecordingFile, Session
from recordings.samples import generate_participant_media
from recordings.tasks import process_session_task

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
        lambda inputs, output: real(inputs, output, width=320, height=180, preset="ultrafast"),
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


def test_broken_recordings_fail_visibly(ingest, session, settings, caplog):
    ingest.upload(session.conf_num, SimpleUploadedFile("alice.mp4", b"not a video at all"))
    ingest.end(session.conf_num)

    assert process_session_task(session.pk) == "failed"

    session.refresh_from_db()
    assert session.state == Session.State.FAILED
    assert "alice.mp4" in session.processing_error
    assert "not a readable media file" in session.processing_error
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
