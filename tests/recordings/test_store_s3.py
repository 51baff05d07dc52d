"""The recording store in an S3 bucket (moto's real server, IAM keys checked):
ingest streams into the bucket with its sha256, files are served from it with
Range and conditional requests, a real session is processed from and into it,
delivery reads from it, retention deletes its objects, and nothing of a
recording stays on the machine's own disk."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone
from django_q.conf import Conf

from delivery import scheduling
from delivery.models import Delivery
from portal import health
from projects.models import Room
from recordings import processing, store
from recordings.models import RecordingFile, Session
from recordings.retention import expire_old_files
from recordings.samples import generate_participant_media
from tests import media_samples
from tests.delivery.engine_support import local_destination
from tests.recordings.seed import add_file, make_room, make_session
from tests.servers import moto_s3
from tests.servers.counting_proxy import CountingProxy

from .ingest_client import Ingest

s3_server = moto_s3.s3_server
s3 = moto_s3.s3
ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024
PART = 5 * MB  # S3's smallest part


def bucket_options(server, bucket: str) -> dict:
    return {
        "bucket_name": bucket,
        "endpoint_url": server.endpoint_url,
        "access_key": server.access_key_id,
        "secret_key": server.secret_access_key,
        "region_name": server.region,
        "file_overwrite": True,
        "transfer_config": TransferConfig(
            multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=2
        ),
    }


def store_in_bucket(settings, server, bucket: str, endpoint_url: str = "") -> None:
    """Make ``bucket`` the recording store, reached through ``endpoint_url``
    (e.g. a proxy before the server) if given."""
    options = bucket_options(server, bucket)
    if endpoint_url:
        options["endpoint_url"] = endpoint_url
    settings.STORAGES = {
        **settings.STORAGES,
        "recordings": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options},
    }


@pytest.fixture
def bucket(settings, s3, request) -> str:
    """A fresh bucket of the test's own as the recording store."""
    name = "rec-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:20]
    s3.client().create_bucket(Bucket=name)
    store_in_bucket(settings, s3, name)
    # Would hand nginx a path it cannot have: a bucket must be streamed by Django.
    settings.RECORDINGS_X_ACCEL_PREFIX = "/_protected/"
    assert not store.is_local()
    return name


def keys(server, bucket: str) -> list[str]:
    listing = server.client().list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def object_sha256(server, bucket: str, key: str) -> str:
    body = server.client().get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.sha256()
    for chunk in body.iter_chunks(MB):
        digest.update(chunk)
    return digest.hexdigest()


def files_on_disk(settings) -> list[str]:
    data = Path(settings.DATA_DIR)
    return sorted(str(p.relative_to(data)) for p in data.rglob("*") if p.is_file())


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


# --- settings and the store itself --------------------------------------------------


def test_settings_read_django_storages_variables_from_the_environment(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTEST"))},
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATA_DIR": str(tmp_path),
        "SECRET_KEY": "x" * 50,
        "FIELD_ENCRYPTION_KEYS": "dGVzdC1vbmx5LWtleS1kby1ub3QtdXNlLWl0LTAwMDA=",
        "RECORDING_STORAGE_BACKEND": "storages.backends.s3.S3Storage",
        "AWS_STORAGE_BUCKET_NAME": "recs",
        "AWS_S3_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalr-secret",
        "AWS_S3_REGION_NAME": "eu-west-3",
    }
    code = (
        "import django; django.setup();"
        "from recordings import store; s = store.backend();"
        "print(type(s).__name__, s.bucket_name, s.endpoint_url, s.access_key, s.secret_key,"
        " s.region_name, s.transfer_config.multipart_chunksize)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60, check=True,
    ).stdout.split()  # fmt: skip
    assert out == [
        "S3Storage", "recs", "http://127.0.0.1:9", "AKIDEXAMPLE", "wJalr-secret", "eu-west-3",
        str(8 * MB),
    ]  # fmt: skip


def test_put_streams_a_large_file_in_parts_and_hashes_it_on_the_way(bucket, s3, tmp_path):
    source = tmp_path / "big.mp4"
    data = os.urandom(2 * PART + 123)
    source.write_bytes(data)
    stored = store.put("app/room/1/big.mp4", source, move=True)
    assert stored == store.Stored("app/room/1/big.mp4", len(data), hashlib.sha256(data).hexdigest())
    assert not source.exists()
    head = s3.client().head_object(Bucket=bucket, Key="app/room/1/big.mp4")
    assert head["ETag"].strip('"').endswith("-3")  # three parts: a multipart upload
    assert head["ContentType"] == "video/mp4"
    assert object_sha256(s3, bucket, "app/room/1/big.mp4") == stored.sha256
    assert (
        b"".join(store.iter_range("app/room/1/big.mp4", PART - 10, 20))
        == data[PART - 10 : PART + 10]
    )
    assert store.size("app/room/1/big.mp4") == len(data)
    assert list(store.listing("app")) == ["app/room/1/big.mp4"]
    with pytest.raises(FileExistsError):
        store.put("app/room/1/big.mp4", _bytes_file(tmp_path))
    store.delete("app/room/1/big.mp4")
    store.delete("app/room/1/big.mp4")  # gone already: not an error
    assert keys(s3, bucket) == []
    with pytest.raises(store.Missing):
        store.size("app/room/1/big.mp4")


def _bytes_file(tmp_path: Path) -> Path:
    path = tmp_path / "other.mp4"
    path.write_bytes(b"other")
    return path


def test_a_fetched_copy_that_does_not_match_its_sha256_is_refused(bucket, tmp_path):
    store.put("a/r/1/x.bin", _bytes_file(tmp_path))
    with store.fetch("a/r/1/x.bin", sha256=hashlib.sha256(b"other").hexdigest()) as fetched:
        assert fetched.path.read_bytes() == b"other"
    assert not fetched.path.exists()
    with pytest.raises(ValueError), store.fetch("a/r/1/x.bin", sha256="0" * 64):
        pass
    with pytest.raises(store.Missing), store.fetch("a/r/1/nothing.bin"):
        pass


def test_health_reaches_the_bucket_and_says_when_it_is_gone(bucket, settings, s3):
    assert health.store_reachable()
    options = {**bucket_options(s3, "no-such-bucket")}
    settings.STORAGES = {
        **settings.STORAGES,
        "recordings": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options},
    }
    assert not health.store_reachable()


# --- ingest, serving, processing, delivery, retention ------------------------------------


@pytest.mark.django_db
def test_an_upload_is_streamed_into_the_bucket_with_its_sha256(client, world, bucket, s3, settings):
    ingest = Ingest(client, world.app_id, world.created.app_key)
    room = Room.objects.create(project=world.project, name="standup")
    conf_num = ingest.start(room)
    video = media_samples.recording(1.0)
    response = ingest.upload(conf_num, SimpleUploadedFile("cam.webm", video), participant="Alice")
    assert response.status_code == 201, response.content
    rf = RecordingFile.objects.get()
    # Put before the session row is locked, under a key of its own in the
    # session's folder, ending in the file's name.
    key = rf.storage_path
    folder = f"{world.app_id}/{room.room_id}/{conf_num}/"
    assert re.fullmatch(re.escape(folder) + r"[0-9a-f]{32}/" + re.escape(rf.name), key)
    assert keys(s3, bucket) == [key]
    assert rf.sha256 == hashlib.sha256(video).hexdigest() == object_sha256(s3, bucket, key)
    assert files_on_disk(settings) == []  # the temporary upload is gone too


def start_slowed_put(proxy: CountingProxy, work, results: dict) -> threading.Thread:
    """Run ``work`` (a put through the slowed ``proxy``) in a thread; return once
    its first 256 KB went through, i.e. while the put is under way."""
    proxy.reset()
    thread = threading.Thread(target=work)
    thread.start()
    deadline = time.monotonic() + 30
    try:
        while proxy.upstream < 256 * 1024:
            assert time.monotonic() < deadline and thread.is_alive(), results
            time.sleep(0.05)
    except BaseException:
        thread.join(60)
        raise
    return thread


@pytest.mark.pg
@pytest.mark.skipif(
    "sqlite" in django_settings.DATABASES["default"]["ENGINE"],
    reason="SQLite has no row locks (select_for_update does nothing): the wait this test "
    "guards against happens on PostgreSQL",
)
@pytest.mark.django_db(transaction=True)
def test_a_slow_bucket_put_does_not_hold_the_session_row_lock(world, s3, settings):
    """A GB recording takes minutes to reach the bucket: meanwhile the
    session's other uploads and its end go through, and the slow upload, now
    too late for the ended session, leaves nothing in the bucket."""
    name = "rec-slow-put"
    s3.client().create_bucket(Bucket=name)
    big = json.dumps([{"text": "x" * 1000}] * 4000).encode()  # 4 MB of chat
    # 512 KB/s between the portal and the bucket: the big put takes ~8 s.
    with CountingProxy(s3.port, rate=512 * 1024) as proxy:
        store_in_bucket(settings, s3, name, endpoint_url=f"http://127.0.0.1:{proxy.port}")
        ingest = Ingest(Client(), world.app_id, world.created.app_key)
        room = Room.objects.create(project=world.project, name="standup")
        conf_num = ingest.start(room)
        responses = {}

        def upload_big() -> None:
            try:
                mine = Ingest(Client(), world.app_id, world.created.app_key)
                file = SimpleUploadedFile("chat.json", big)
                responses["big"] = mine.upload(conf_num, file, file_type="chat")
            finally:
                connection.close()

        thread = start_slowed_put(proxy, upload_big, responses)
        try:
            began = time.monotonic()
            small = ingest.upload(
                conf_num, SimpleUploadedFile("metadata.json", b"[]"), file_type="metadata"
            )
            stored_meanwhile = proxy.upstream
            ended = ingest.end(conf_num)
            took = time.monotonic() - began
            still_sending = proxy.upstream < len(big)
        finally:
            thread.join(60)
    assert small.status_code == 201, small.content
    assert ended.status_code == 200, ended.content
    # Neither waited for the big put (without the fix: until all of it was sent).
    assert stored_meanwhile < len(big) and still_sending, (stored_meanwhile, took)
    assert took < 4, took
    # The big upload finished after the end: refused, and its object removed.
    assert responses["big"].status_code == 409, responses["big"].content
    assert responses["big"].json()["result"] == 1009
    rf = RecordingFile.objects.get()
    assert rf.type == "metadata" and keys(s3, name) == [rf.storage_path]


@pytest.mark.pg
@pytest.mark.skipif(
    "sqlite" in django_settings.DATABASES["default"]["ENGINE"],
    reason="SQLite has no row locks (select_for_update does nothing): the wait this test "
    "guards against happens on PostgreSQL",
)
@pytest.mark.django_db(transaction=True)
def test_a_slow_bucket_put_of_the_composite_does_not_hold_the_session_row_lock(
    world, s3, settings, tmp_path
):
    """Storing an hour's composite takes a while: the session row is not
    locked meanwhile (ingest, delivery scheduling and the pages lock it)."""
    name = "rec-slow-composite"
    s3.client().create_bucket(Bucket=name)
    output, poster = tmp_path / "out.mp4", tmp_path / "out.jpg"
    output.write_bytes(os.urandom(4 * MB))
    poster.write_bytes(b"jpg")
    session = make_session(make_room(world.project), state=Session.State.PROCESSING)
    with CountingProxy(s3.port, rate=512 * 1024) as proxy:  # the put takes ~8 s
        store_in_bucket(settings, s3, name, endpoint_url=f"http://127.0.0.1:{proxy.port}")
        finished: dict[str, Session] = {}

        def finish() -> None:
            try:
                finished["session"] = processing._finish(
                    session, (str(output), str(poster), 2.0), participants=2
                )
            finally:
                connection.close()

        thread = start_slowed_put(proxy, finish, finished)
        try:
            with transaction.atomic():  # without the fix: "could not obtain lock"
                Session.objects.select_for_update(nowait=True).get(pk=session.pk)
            still_sending = proxy.upstream < 4 * MB
        finally:
            thread.join(60)
    assert still_sending
    assert finished["session"].state == Session.State.READY
    transcoded = RecordingFile.objects.get(session=session, type="transcoded")
    assert keys(s3, name) == sorted([transcoded.storage_path, transcoded.poster_path])
    assert object_sha256(s3, name, transcoded.storage_path) == transcoded.sha256


@pytest.mark.django_db
def test_range_and_conditional_requests_are_served_from_the_bucket(client, world, bucket):
    cache.clear()
    data = bytes(range(256)) * 400
    rf = add_file(make_session(make_room(world.project)), "transcoded", "t.mp4", data)
    auth = basic(world.created.recording_username, world.created.recording_password)
    response = client.get(rf.url_path, HTTP_AUTHORIZATION=auth, HTTP_RANGE="bytes=1000-1999")
    assert response.status_code == 206
    assert "X-Accel-Redirect" not in response
    assert response["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    assert b"".join(response.streaming_content) == data[1000:2000]
    whole = client.get(rf.url_path, HTTP_AUTHORIZATION=auth)
    assert whole.status_code == 200 and b"".join(whole.streaming_content) == data
    again = client.get(rf.url_path, HTTP_AUTHORIZATION=auth, HTTP_IF_NONE_MATCH=whole["ETag"])
    assert again.status_code == 304 and again.content == b""
    tail = client.get(rf.url_path, HTTP_AUTHORIZATION=auth, HTTP_RANGE="bytes=-10")
    assert b"".join(tail.streaming_content) == data[-10:]


@pytest.mark.slow
@pytest.mark.django_db
def test_a_two_participant_session_is_processed_from_and_into_the_bucket(
    client, world, bucket, s3, settings, tmp_path, monkeypatch
):
    real = processing.media.make_composite
    monkeypatch.setattr(
        processing.media, "make_composite",
        lambda inputs, output, **kw: real(inputs, output, width=320, height=180, preset="ultrafast", **kw),
    )  # fmt: skip
    ingest = Ingest(client, world.app_id, world.created.app_key)
    room = Room.objects.create(project=world.project, name="standup")
    conf_num = ingest.start(room)
    for index, name in enumerate(("Alice", "Bob")):
        path = tmp_path / f"{name}.mp4"
        generate_participant_media(
            path, name=name, seconds=2.0, index=index, width=160, height=90, preset="ultrafast"
        )
        with open(path, "rb") as fh:
            assert ingest.upload(conf_num, fh, participant=name).status_code == 201
    assert ingest.end(conf_num).status_code == 200
    session = processing.process_session(Session.objects.get(conf_num=conf_num).pk)
    assert session.state == Session.State.READY, session.processing_error
    transcoded = session.files.get(type="transcoded")
    prefix = f"{world.app_id}/{room.room_id}/{conf_num}/"
    uploads = dict(session.files.filter(type="individual").values_list("name", "storage_path"))
    assert sorted(uploads) == ["Alice.mp4", "Bob.mp4"]
    for name, key in uploads.items():
        assert re.fullmatch(re.escape(prefix) + r"[0-9a-f]{32}/" + re.escape(name), key)
    # The composite and its poster too, put before the row lock: one folder of their own.
    outputs = re.escape(prefix) + r"[0-9a-f]{32}/"
    assert re.fullmatch(outputs + "transcoded\\.mp4", transcoded.storage_path)
    assert transcoded.poster_path == transcoded.storage_path.replace(".mp4", ".jpg")
    assert keys(s3, bucket) == sorted(
        [*uploads.values(), transcoded.poster_path, transcoded.storage_path]
    )
    assert object_sha256(s3, bucket, transcoded.storage_path) == transcoded.sha256
    assert transcoded.size == store.size(transcoded.storage_path) > 0
    assert session.participant_count == 2
    assert files_on_disk(settings) == []  # inputs and outputs of the run are removed


@pytest.mark.django_db(transaction=True)
def test_delivery_streams_from_the_bucket_to_the_destination(
    world, bucket, tmp_path, local_roots, monkeypatch, settings
):
    monkeypatch.setattr(Conf, "SYNC", True)
    session = make_session(make_room(world.project))
    big = os.urandom(3 * MB + 7)
    video = add_file(session, "transcoded", "transcoded.mp4", big)
    add_file(session, "chat", "chat.json", b"[]")
    local_destination(world.project, tmp_path / "nas", types=("transcoded", "chat"))
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = Delivery.objects.get()
    assert delivery.state == Delivery.State.DELIVERED, delivery.last_error
    landed = tmp_path / "nas" / "recordings" / session.room.room_id / session.conf_num
    assert (landed / "transcoded.mp4").read_bytes() == big
    assert hashlib.sha256((landed / "transcoded.mp4").read_bytes()).hexdigest() == video.sha256
    assert (landed / "chat.json").read_bytes() == b"[]"
    # The temporary copies were removed; no recording stays on this machine.
    assert [p for p in files_on_disk(settings) if not p.startswith("tmp/manifest")] == []


@pytest.mark.django_db(transaction=True)
def test_a_file_changed_in_the_bucket_is_not_delivered(
    world, bucket, s3, tmp_path, local_roots, monkeypatch
):
    monkeypatch.setattr(Conf, "SYNC", True)
    session = make_session(make_room(world.project))
    rf = add_file(session, "transcoded", "transcoded.mp4", b"original bytes")
    s3.client().put_object(Bucket=bucket, Key=rf.storage_path, Body=b"altered bytes!")
    local_destination(world.project, tmp_path / "nas", types=("transcoded",))
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = Delivery.objects.get()
    assert delivery.state != Delivery.State.DELIVERED
    assert "does not match its sha256" in delivery.last_error
    landed = tmp_path / "nas" / "recordings" / session.room.room_id / session.conf_num
    assert not (landed / "transcoded.mp4").exists()


@pytest.mark.django_db
def test_retention_deletes_the_objects_from_the_bucket(world, bucket, s3):
    session = make_session(make_room(world.project))
    old = timezone.now() - timedelta(hours=73)
    gone = add_file(session, "transcoded", "old.mp4", b"old", created_at=old, poster=b"jpg")
    kept = add_file(session, "chat", "new.json", b"[]")
    assert expire_old_files() == 1
    assert keys(s3, bucket) == [kept.storage_path]
    gone.refresh_from_db()
    assert gone.is_expired and not store.exists(gone.storage_path)


@pytest.mark.django_db
def test_retention_removes_bytes_left_without_a_row_once_a_session_is_all_expired(
    world, bucket, s3
):
    old = timezone.now() - timedelta(hours=73)
    session = make_session(make_room(world.project))
    rf = add_file(session, "transcoded", "old.mp4", b"old", created_at=old)
    folder = rf.storage_path.rsplit("/", 1)[0]
    # What a processing worker killed between storing and committing leaves.
    s3.client().put_object(Bucket=bucket, Key=f"{folder}/transcoded.mp4", Body=b"orphan")
    other = add_file(
        make_session(make_room(world.project)), "chat", "c.json", b"[]", created_at=old
    )
    alive = make_session(make_room(world.project))
    add_file(alive, "chat", "new.json", b"[]")
    add_file(alive, "chat", "old.json", b"[]", created_at=old)
    alive_orphan = f"{alive.project.app_id}/{alive.room.room_id}/{alive.conf_num}/transcoded.mp4"
    s3.client().put_object(Bucket=bucket, Key=alive_orphan, Body=b"not yet")
    assert expire_old_files() == 3
    left = keys(s3, bucket)
    assert not [k for k in left if k.startswith(folder + "/")]
    assert other.storage_path not in left
    assert alive_orphan in left  # its session still has a file within retention


@pytest.mark.django_db
def test_retention_sweeps_the_folder_of_an_upload_kept_one_level_deeper(client, world, bucket, s3):
    ingest = Ingest(client, world.app_id, world.created.app_key)
    room = Room.objects.create(project=world.project, name="standup")
    conf_num = ingest.start(room)
    upload = SimpleUploadedFile("chat.json", b"[]")
    assert ingest.upload(conf_num, upload, file_type="chat").status_code == 201
    rf = RecordingFile.objects.get()
    folder = f"{world.app_id}/{room.room_id}/{conf_num}"
    assert rf.storage_path.startswith(folder + "/") and rf.storage_path.count("/") == 4
    # Bytes of an upload whose row was never committed (a web process killed).
    orphan = f"{folder}/{'0' * 32}/chat.json"
    s3.client().put_object(Bucket=bucket, Key=orphan, Body=b"[]")
    old = timezone.now() - timedelta(hours=73)
    Session.objects.update(started_at=old)  # abandoned: failed, its files expire
    RecordingFile.objects.update(created_at=old)
    assert expire_old_files() == 1
    assert keys(s3, bucket) == []
