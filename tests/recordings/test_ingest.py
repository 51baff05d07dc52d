"""The ingest API: sessions, recording state codes, streamed uploads, end."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from projects.actions.projects import do_create_project
from projects.models import Room
from recordings.models import RecordingFile, Session
from recordings.uploads import StreamingUploadHandler
from tests import media_samples
from webhooks.models import WebhookMessage

from .ingest_client import Ingest, basic, enable_webhook

pytestmark = pytest.mark.django_db
State = Session.RecordingState


@pytest.fixture
def ingest(client, world) -> Ingest:
    return Ingest(client, world.app_id, world.created.app_key)


@pytest.fixture
def room(world) -> Room:
    return Room.objects.create(project=world.project, name="standup")


@pytest.fixture
def conf_num(ingest, room) -> str:
    return ingest.start(room)


def store_dir(settings) -> Path:
    return Path(settings.RECORDINGS_ROOT)


def temp_files(settings) -> list[str]:
    folder = Path(settings.DATA_DIR) / "tmp" / "uploads"
    return sorted(os.listdir(folder)) if folder.exists() else []


def stored_files(settings) -> list[Path]:
    root = store_dir(settings)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def set_state(conf_num: str, **fields) -> None:
    Session.objects.filter(conf_num=conf_num).update(**fields)


# --- sessions ------------------------------------------------------------------


def test_a_session_starts_with_recording_off_in_a_plain_room(ingest, room):
    response = ingest.post(f"/rooms/{room.room_id}/sessions")
    body = response.json()
    assert response.status_code == 201 and body["result"] == 0
    assert body["recording"] == "off" and body["live_recording"]["state"] == "off"
    assert Session.objects.get(conf_num=body["conf_num"]).room == room


def test_auto_recording_rooms_start_recording_and_live_recording(ingest, world):
    room = Room.objects.create(
        project=world.project,
        name="auto",
        settings={
            "auto_recording": True,
            "live_recording": {"auto_recording": True, "url": "https://view.example.com/x"},
        },
    )
    session = Session.objects.get(conf_num=ingest.start(room))
    assert session.recording == State.ON and session.live_recording == State.ON
    assert session.live_recording_config == {"url": "https://view.example.com/x"}


def test_unknown_rooms_and_sessions_are_404(ingest):
    for response in (
        ingest.post("/rooms/ffffffffffffffffffffffff/sessions"),
        ingest.post("/sessions/123/recording/start"),
        ingest.end("123"),
        ingest.upload("123", SimpleUploadedFile("a.mp4", b"x")),
    ):
        assert response.status_code == 404
        assert response.json()["result"] != 0 and response.json()["error"]


def test_rooms_and_sessions_of_another_project_are_404(client, world, room, conf_num):
    other = do_create_project("Other", acting_user=world.charlie)
    theirs = Ingest(client, other.project.app_id, other.app_key)
    assert theirs.post(f"/rooms/{room.room_id}/sessions").status_code == 404
    assert theirs.post(f"/sessions/{conf_num}/recording/start").status_code == 404
    assert theirs.upload(conf_num, SimpleUploadedFile("a.mp4", b"x")).status_code == 404
    assert theirs.end(conf_num).status_code == 404


def test_wrong_credentials_are_401(client, world, room):
    response = client.post(
        f"/ingest/v1/rooms/{room.room_id}/sessions", **basic(world.app_id, "nope")
    )
    assert response.status_code == 401 and response.json()["result"] != 0


def test_malformed_json_is_400(ingest, conf_num):
    response = ingest.post(f"/sessions/{conf_num}/recording/start", raw="{oops")
    assert response.status_code == 400 and response.json()["result"] != 0


# --- recording state -----------------------------------------------------------


@pytest.mark.parametrize(
    "path, state_field, before, code",
    [
        ("recording/start", "recording", State.STARTING, 5033),
        ("recording/start", "recording", State.ON, 5034),
        ("recording/stop", "recording", State.STOPPING, 5035),
        ("recording/stop", "recording", State.OFF, 5036),
        ("live-recording/start", "live_recording", State.STARTING, 5122),
        ("live-recording/start", "live_recording", State.ON, 5139),
        ("live-recording/stop", "live_recording", State.OFF, 5140),
        ("live-recording/stop", "live_recording", State.STOPPING, 5141),
    ],
)
def test_state_errors_carry_the_platform_codes(ingest, conf_num, path, state_field, before, code):
    set_state(conf_num, **{state_field: before})
    response = ingest.post(f"/sessions/{conf_num}/{path}", {"role": "moderator"})
    assert response.status_code == 409
    assert response.json()["result"] == code
    assert getattr(Session.objects.get(conf_num=conf_num), state_field) == before


@pytest.mark.parametrize(
    "path, code",
    [
        ("recording/start", 5007),
        ("recording/stop", 5008),
        ("live-recording/start", 5007),
        ("live-recording/stop", 5008),
    ],
)
def test_only_moderators_may_switch_recording(ingest, conf_num, path, code):
    response = ingest.post(f"/sessions/{conf_num}/{path}", {"role": "participant"})
    assert response.status_code == 403
    assert response.json()["result"] == code


def test_recording_starts_and_stops(ingest, conf_num):
    started = ingest.post(f"/sessions/{conf_num}/recording/start", {"role": "moderator"})
    assert started.status_code == 200 and started.json()["recording"] == "on"
    stopped = ingest.post(f"/sessions/{conf_num}/recording/stop")
    assert stopped.status_code == 200 and stopped.json()["recording"] == "off"


def test_live_recording_keeps_its_config(ingest, conf_num):
    config = {"url": "https://viewer.example.com/live"}
    response = ingest.post(f"/sessions/{conf_num}/live-recording/start", {"config": config})
    assert response.status_code == 200 and response.json()["live_recording"]["state"] == "on"
    assert Session.objects.get(conf_num=conf_num).live_recording_config == config
    stopped = ingest.post(f"/sessions/{conf_num}/live-recording/stop").json()
    assert stopped["live_recording"]["state"] == "off"


@pytest.mark.parametrize("config", ["https://x.example.com", {"url": "ftp://x"}, {"url": 5}])
def test_invalid_live_config_is_5138(ingest, conf_num, config):
    response = ingest.post(f"/sessions/{conf_num}/live-recording/start", {"config": config})
    assert response.status_code == 400 and response.json()["result"] == 5138


def test_live_recording_is_refused_in_chat_only_rooms(ingest, world):
    room = Room.objects.create(project=world.project, name="chat", settings={"chat_only": True})
    conf_num = ingest.start(room)
    assert ingest.post(f"/sessions/{conf_num}/live-recording/start").json()["result"] == 5097
    assert ingest.post(f"/sessions/{conf_num}/live-recording/stop").json()["result"] == 5097


def test_an_ended_session_refuses_recording_changes(ingest, conf_num):
    assert ingest.end(conf_num).status_code == 200
    response = ingest.post(f"/sessions/{conf_num}/recording/start")
    assert response.status_code == 409 and "ended" in response.json()["error"]
    assert ingest.end(conf_num).status_code == 409


# --- uploads -------------------------------------------------------------------


def test_an_upload_is_stored_with_size_and_sha256(ingest, world, room, conf_num, settings):
    content = media_samples.recording()
    response = ingest.upload(
        conf_num, SimpleUploadedFile("alice.mp4", content, "video/mp4"), participant="Alice"
    )
    assert response.status_code == 201, response.content
    body = response.json()["file"]
    assert body == {
        "name": "alice.mp4",
        "type": "individual",
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "participant": "Alice",
    }
    file = RecordingFile.objects.get()
    assert file.storage_path == f"{world.app_id}/{room.room_id}/{conf_num}/alice.mp4"
    assert (store_dir(settings) / file.storage_path).read_bytes() == content
    assert file.content_type == "video/mp4" and file.duration_seconds == pytest.approx(1, abs=0.1)
    assert temp_files(settings) == []


def test_file_names_are_sanitised_and_unique_in_the_session(ingest, conf_num):
    names = []
    for raw in ("../../etc/passwd", "a\x00b.mp4", "x" * 300 + ".mp4", "a_b.mp4", "transcoded.mp4"):
        response = ingest.upload(conf_num, SimpleUploadedFile(raw, media_samples.recording()))
        assert response.status_code == 201, response.content
        names.append(response.json()["file"]["name"])
    assert names[0] == "passwd.mp4"  # the extension follows the probed type
    assert "/" not in "".join(names) and "\x00" not in "".join(names)
    assert len(names[2]) <= 120 and names[2].endswith(".mp4")
    assert names[1] == "ab.mp4" and names[3] == "a_b.mp4"
    assert len(set(names)) == len(names)
    assert names[4] != "transcoded.mp4"


def test_an_upload_needs_a_valid_type_and_a_file(ingest, conf_num, settings):
    wrong = ingest.upload(conf_num, SimpleUploadedFile("a.mp4", b"x"), file_type="movie")
    assert wrong.status_code == 400 and "type" in wrong.json()["error"]
    missing = ingest.client.post(
        f"/ingest/v1/sessions/{conf_num}/files", data={"type": "chat"}, **ingest.auth
    )
    assert missing.status_code == 400
    assert stored_files(settings) == [] and temp_files(settings) == []
    assert not RecordingFile.objects.exists()


def test_an_upload_to_an_ended_session_is_409(ingest, conf_num, settings):
    ingest.end(conf_num)
    response = ingest.upload(conf_num, SimpleUploadedFile("a.mp4", b"x" * 1000))
    assert response.status_code == 409 and response.json()["result"] != 0
    assert stored_files(settings) == [] and temp_files(settings) == []


def test_too_large_uploads_are_413_and_leave_nothing(ingest, conf_num, settings):
    settings.UPLOAD_MAX_BYTES = 100_000
    response = ingest.upload(conf_num, SimpleUploadedFile("big.mp4", b"x" * 200_000))
    assert response.status_code == 413
    assert response.json()["result"] != 0 and "100000" in response.json()["error"]
    assert stored_files(settings) == [] and temp_files(settings) == []
    assert not RecordingFile.objects.exists()


def test_uploads_over_the_limit_are_stopped_while_streaming(conf_num, world, settings, rf):
    """Without a trustworthy Content-Length the handler counts the bytes itself."""
    settings.UPLOAD_MAX_BYTES = 100_000
    handler = StreamingUploadHandler(max_bytes=100_000)
    handler.new_file("file", "big.mp4", "video/mp4", None)
    handler.receive_data_chunk(b"x" * 60_000, 0)
    temp = handler.temp_path
    assert os.path.exists(temp)
    with pytest.raises(Exception) as info:
        handler.receive_data_chunk(b"x" * 60_000, 60_000)
    assert info.value.status_code == 413
    assert not os.path.exists(temp)


def test_a_full_disk_is_507_and_leaves_nothing(ingest, conf_num, settings, monkeypatch):
    import errno

    from recordings import uploads

    def disk_full(fh, data):  # stands in for a full disk (ENOSPC)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(uploads, "write_chunk", disk_full)
    response = ingest.upload(conf_num, SimpleUploadedFile("a.mp4", b"x" * 1000))
    assert response.status_code == 507 and response.json()["result"] != 0
    assert stored_files(settings) == [] and temp_files(settings) == []
    assert not RecordingFile.objects.exists()


def test_a_failed_database_write_leaves_no_file(ingest, conf_num, settings, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(RecordingFile.objects, "create", broken)
    with pytest.raises(RuntimeError):
        ingest.upload(conf_num, SimpleUploadedFile("a.mp4", media_samples.recording()))
    assert stored_files(settings) == [] and temp_files(settings) == []


class Probe:
    """Notes how many handlers the upload made and the largest piece of the
    body one held, by wrapping the real handler's methods for one test."""

    def __init__(self, monkeypatch):
        self.instances = self.largest_chunk = 0
        real_init = StreamingUploadHandler.__init__
        real_receive = StreamingUploadHandler.receive_data_chunk

        def init(handler, *args, **kwargs):
            self.instances += 1
            real_init(handler, *args, **kwargs)

        def receive(handler, raw_data, start):
            self.largest_chunk = max(self.largest_chunk, len(raw_data))
            return real_receive(handler, raw_data, start)

        monkeypatch.setattr(StreamingUploadHandler, "__init__", init)
        monkeypatch.setattr(StreamingUploadHandler, "receive_data_chunk", receive)


@pytest.mark.slow
def test_a_50_mb_upload_streams_through_the_handler_one_chunk_at_a_time(
    ingest, conf_num, settings, monkeypatch
):
    probe = Probe(monkeypatch)
    size = 50 * 1024 * 1024
    block = os.urandom(1024 * 1024)
    # A real recording: 50 MB of PCM audio (~17 s of 8-channel 96 kHz noise).
    header = media_samples.wav_header(size - 44)
    content = io.BytesIO(header + block[44:] + block * 49)
    content.name = "big.wav"
    response = ingest.upload(conf_num, content)
    assert response.status_code == 201, response.content
    assert probe.instances == 1
    assert 0 < probe.largest_chunk <= StreamingUploadHandler.chunk_size
    digest = hashlib.sha256(header + block[44:])
    for _ in range(49):
        digest.update(block)
    assert response.json()["file"]["size"] == size
    assert response.json()["file"]["sha256"] == digest.hexdigest()
    file = RecordingFile.objects.get()
    assert (store_dir(settings) / file.storage_path).stat().st_size == size


# --- end ---------------------------------------------------------------------------


def test_ending_queues_the_recording_webhook_and_processing(
    ingest, world, room, conf_num, django_capture_on_commit_callbacks
):
    enable_webhook(world.project)
    content = media_samples.recording()
    ingest.upload(conf_num, SimpleUploadedFile("alice.mp4", content), participant="Alice")
    ingest.upload(conf_num, SimpleUploadedFile("chat.json", b"[]"), file_type="chat")
    with django_capture_on_commit_callbacks() as callbacks:
        response = ingest.end(conf_num)
    assert response.status_code == 200 and response.json()["state"] == "processing"
    message = WebhookMessage.objects.get(event_type="recording")
    payload = message.payload
    assert (payload["type"], payload["app_id"], payload["room_id"], payload["conf_num"]) == (
        "recording",
        world.app_id,
        room.room_id,
        conf_num,
    )
    [item] = payload["files"]
    assert payload["recording"] == [item["url"]]  # EnableX's shape: URL strings
    assert item["name"] == "alice.mp4" and item["size"] == len(content)
    assert item["participant"] == "Alice"
    assert item["url"].endswith(f"/recordings/{world.app_id}/{room.room_id}/{conf_num}/alice.mp4")
    assert len(item["sha256"]) == 64
    assert callbacks  # processing, delivery and the webhook wait for the commit


def test_a_live_upload_queues_the_live_recording_webhook(ingest, world, conf_num):
    enable_webhook(world.project)
    live = SimpleUploadedFile("live.mp4", media_samples.recording())
    response = ingest.upload(conf_num, live, file_type="live")
    assert response.status_code == 201
    message = WebhookMessage.objects.get(event_type="live_recording")
    assert message.payload["files"][0]["name"] == "live.mp4"
    assert message.payload["recording"] == [message.payload["files"][0]["url"]]
