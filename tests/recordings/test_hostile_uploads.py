"""Uploads an attacker would send to the ingest API, each refused at the door
with nothing kept; the server, not the client, decides a stored file's type."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from projects.models import Room
from recordings.ffmpeg import ffmpeg_exe
from recordings.models import RecordingFile, Session
from tests import media_samples
from tests.factories import make_recording

from .ingest_client import Ingest

pytestmark = pytest.mark.django_db


@pytest.fixture
def ingest(client, world) -> Ingest:
    return Ingest(client, world.app_id, world.created.app_key)


@pytest.fixture
def conf_num(ingest, world) -> str:
    return ingest.start(Room.objects.create(project=world.project, name="standup"))


def nothing_kept(settings) -> bool:
    store = Path(settings.RECORDINGS_ROOT)
    uploads = Path(settings.DATA_DIR) / "tmp" / "uploads"
    stored = [p for p in store.rglob("*") if p.is_file()] if store.exists() else []
    temps = os.listdir(uploads) if uploads.exists() else []
    return not stored and not temps and not RecordingFile.objects.exists()


def another_recording(world) -> Path:
    """A recording already in the store (standing in for another tenant's)."""
    rf = make_recording(world.project, content=media_samples.recording(index=1))
    from django.core.files.storage import storages

    return Path(storages["recordings"].path(rf.storage_path))


@pytest.mark.parametrize("file_type", ["individual", "live"])
def test_an_html_page_is_refused_with_415_and_nothing_is_kept(
    ingest, conf_num, settings, file_type
):
    page = SimpleUploadedFile("alice.mp4", media_samples.HTML_PAGE, "video/mp4")
    response = ingest.upload(conf_num, page, file_type=file_type)
    assert response.status_code == 415, response.content
    body = response.json()
    assert body["result"] == 1015 and "received an HTML page" in body["error"]
    assert nothing_kept(settings)


def test_an_hls_playlist_naming_another_recording_by_path_is_refused(
    ingest, world, conf_num, settings
):
    target = another_recording(world)
    before = set(RecordingFile.objects.values_list("pk", flat=True))
    playlist = SimpleUploadedFile("alice.m3u8", media_samples.hls_playlist(target))
    response = ingest.upload(conf_num, playlist)
    assert response.status_code == 415, response.content
    assert "received an HLS playlist" in response.json()["error"]
    assert set(RecordingFile.objects.values_list("pk", flat=True)) == before
    assert not Session.objects.get(conf_num=conf_num).files.exists()


def test_a_concat_list_is_refused(ingest, world, conf_num, settings):
    target = another_recording(world)
    listing = SimpleUploadedFile("alice.mp4", media_samples.concat_list(target))
    response = ingest.upload(conf_num, listing)
    assert response.status_code == 415
    assert "a concat list (concat)" in response.json()["error"]
    assert not Session.objects.get(conf_num=conf_num).files.exists()


@pytest.mark.parametrize("side", [32, 12000])
def test_png_images_are_refused_whatever_their_size(ingest, conf_num, settings, side):
    image = SimpleUploadedFile("alice.mp4", media_samples.png(side, side))
    response = ingest.upload(conf_num, image, file_type="live")
    assert response.status_code == 415
    assert "a PNG image (png_pipe)" in response.json()["error"]
    assert nothing_kept(settings)


def test_an_archive_is_refused(ingest, conf_num, settings):
    archive = SimpleUploadedFile("alice.mp4", b"PK\x03\x04" + os.urandom(2000))
    response = ingest.upload(conf_num, archive)
    assert response.status_code == 415 and "a ZIP archive" in response.json()["error"]
    assert nothing_kept(settings)


def test_a_recording_claiming_100_hours_is_refused_with_422(ingest, conf_num, settings):
    claim = SimpleUploadedFile("alice.mkv", media_samples.claiming_duration(100 * 3600))
    response = ingest.upload(conf_num, claim)
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["result"] == 1022
    assert "100:00:00" in body["error"] and "MEDIA_MAX_SECONDS" in body["error"]
    assert nothing_kept(settings)


def test_the_duration_limit_is_a_setting(ingest, conf_num, settings):
    settings.MEDIA_MAX_SECONDS = 1
    response = ingest.upload(conf_num, SimpleUploadedFile("a.mp4", media_samples.recording(2)))
    assert response.status_code == 422 and "0:00:01 (MEDIA_MAX_SECONDS)" in response.json()["error"]
    assert nothing_kept(settings)


def test_a_recording_longer_than_its_session_is_refused(ingest, conf_num, settings):
    hour = SimpleUploadedFile("alice.mkv", media_samples.claiming_duration(3600))
    response = ingest.upload(conf_num, hour)
    assert response.status_code == 422
    assert f"session {conf_num} started 0:00:0" in response.json()["error"]
    assert nothing_kept(settings)

    # The same file is fine once the session has lasted an hour.
    Session.objects.filter(conf_num=conf_num).update(
        started_at=timezone.now() - timedelta(minutes=58)
    )
    hour = SimpleUploadedFile("alice.mkv", media_samples.claiming_duration(3600))
    assert ingest.upload(conf_num, hour).status_code == 201


def test_a_frame_larger_than_4096x2160_is_refused(ingest, conf_num, settings):
    wide = SimpleUploadedFile("alice.mkv", media_samples.oversized_video(4160, 64))
    response = ingest.upload(conf_num, wide)
    assert response.status_code == 422
    assert "4160x64" in response.json()["error"] and "4096x2160" in response.json()["error"]
    assert nothing_kept(settings)


def test_a_17th_individual_recording_is_refused(ingest, world, conf_num):
    session = Session.objects.get(conf_num=conf_num)
    for index in range(16):
        make_recording(world.project, session=session, name=f"p{index}.mp4")
    response = ingest.upload(conf_num, SimpleUploadedFile("p17.mp4", media_samples.recording()))
    assert response.status_code == 422 and "16 individual recordings" in response.json()["error"]
    assert session.files.count() == 16
    live = SimpleUploadedFile("live.mp4", media_samples.recording())
    assert ingest.upload(conf_num, live, file_type="live").status_code == 201


@pytest.mark.parametrize(
    "content, says",
    [
        (b"<html><script>alert(1)</script></html>", "not valid JSON (line 1, column 1)"),
        (b'{"a": 1', "not valid JSON"),
        ('[{"message": "caf\u00e9"}]'.encode("latin-1"), "is not UTF-8"),
        ("[]".encode("utf-16"), "is not UTF-8"),
    ],
)
@pytest.mark.parametrize("file_type", ["chat", "metadata"])
def test_chat_and_metadata_must_be_utf8_json(ingest, conf_num, settings, content, says, file_type):
    upload = SimpleUploadedFile(f"{file_type}.json", content, "application/json")
    response = ingest.upload(conf_num, upload, file_type=file_type)
    assert response.status_code == 422, response.content
    assert response.json()["result"] == 1022 and says in response.json()["error"]
    assert nothing_kept(settings)


def test_the_client_content_type_is_never_stored(ingest, conf_num):
    video = SimpleUploadedFile("alice.html", media_samples.recording(), "text/html")
    response = ingest.upload(conf_num, video)
    assert response.status_code == 201
    assert "text/html" not in response.content.decode()
    chat = SimpleUploadedFile("chat.html", '[{"message": "h\u00e9"}]'.encode(), "text/html")
    assert ingest.upload(conf_num, chat, file_type="chat").status_code == 201
    stored = dict(RecordingFile.objects.values_list("type", "content_type"))
    assert stored == {"individual": "video/mp4", "chat": "application/json"}
    # A name never says the file is something else.
    assert set(RecordingFile.objects.values_list("name", flat=True)) == {"alice.mp4", "chat.json"}


def test_audio_only_recordings_get_an_audio_type(ingest, conf_num):
    wav = media_samples.wav_header(3_000_000) + os.urandom(3_000_000)
    assert (
        ingest.upload(conf_num, SimpleUploadedFile("a.wav", wav), file_type="live").status_code
        == 201
    )
    assert RecordingFile.objects.get().content_type == "audio/wav"


def test_json_larger_than_its_limit_is_refused(ingest, conf_num, settings, monkeypatch):
    monkeypatch.setattr("recordings.admission.JSON_MAX_BYTES", 1000)
    chat = SimpleUploadedFile("chat.json", json.dumps(["x" * 100] * 20).encode())
    response = ingest.upload(conf_num, chat, file_type="chat")
    assert response.status_code == 422 and "limit of 1000 bytes" in response.json()["error"]
    assert nothing_kept(settings)


def test_a_webm_without_a_duration_header_is_measured_at_the_door(ingest, conf_num, tmp_path):
    """A live-written WebM states no duration; the door measures it rather than
    letting it past the limits unchecked."""
    path = tmp_path / "live.webm"
    with path.open("wb") as out:  # written to a pipe: the muxer cannot go back for the duration
        subprocess.run(
            [ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=160x90:d=3",
             "-c:v", "libvpx", "-deadline", "realtime", "-f", "webm", "pipe:1"],
            stdout=out, check=True,
        )  # fmt: skip
    summary = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True
    ).stderr
    assert "Duration: N/A" in summary
    response = ingest.upload(conf_num, SimpleUploadedFile("live.webm", path.read_bytes()), "live")
    assert response.status_code == 201, response.content
    stored = RecordingFile.objects.get()
    assert stored.content_type == "video/webm"
    assert stored.duration_seconds == pytest.approx(3.0, abs=0.2)
