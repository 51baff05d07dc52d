"""The delivery engine against moto's real S3 server: a whole session,
multipart files, wrong keys and missing buckets, a server that goes away and
comes back, and a worker killed mid-transfer."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone
from django_q.conf import Conf

from delivery import engine, scheduling, tasks
from delivery.actions import deliveries as delivery_actions
from delivery.destinations.s3 import S3Destination
from delivery.models import DeliveredFile, Delivery, DeliveryDestination
from tests.delivery import MB
from tests.delivery.engine_support import make_session
from tests.servers import moto_s3
from tests.servers import webhook_receiver as receivers
from webhooks.actions import do_configure_webhook
from webhooks.models import WebhookMessage

pytestmark = pytest.mark.django_db(transaction=True)

State = Delivery.State
s3_server = moto_s3.s3_server
s3 = moto_s3.s3
webhook_receiver = receivers.webhook_receiver
PART = 5 * MB


@pytest.fixture(autouse=True)
def small_parts(monkeypatch):
    monkeypatch.setattr(S3Destination, "multipart_threshold", PART)
    monkeypatch.setattr(S3Destination, "multipart_chunksize", PART)


@pytest.fixture
def root(request) -> str:
    return f"engine/{request.node.name}"


def s3_destination(project, server, root, **config) -> DeliveryDestination:
    full = server.destination_config(root=root, **config)
    secret_keys = ("access_key_id", "secret_access_key")
    return DeliveryDestination.objects.create(
        project=project, name="bucket", kind="s3", file_types=["transcoded", "chat", "live"],
        config={k: v for k, v in full.items() if k not in secret_keys},
        secrets={k: full[k] for k in secret_keys},
    )  # fmt: skip


def sha256_of_object(server, key: str) -> str:
    digest = hashlib.sha256()
    for chunk in server.client().get_object(Bucket=server.bucket, Key=key)["Body"].iter_chunks(MB):
        digest.update(chunk)
    return digest.hexdigest()


def test_a_session_lands_in_the_bucket_verified_with_the_manifest_last(
    world, s3, root, monkeypatch, webhook_receiver
):
    do_configure_webhook(world.project, url=webhook_receiver.url, acting_user=None)
    monkeypatch.setattr(Conf, "SYNC", True)
    session = make_session(
        world.project,
        {"transcoded.mp4": ("transcoded", 3 * PART + 99), "chat.json": ("chat", b"[]\n")},
    )
    s3_destination(world.project, s3, root)
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = Delivery.objects.get()
    assert delivery.state == State.DELIVERED, delivery.last_error
    prefix = f"{root}/{session.room.room_id}/{session.conf_num}/"
    listing = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=prefix)["Contents"]
    modified = {o["Key"].removeprefix(prefix): o["LastModified"] for o in listing}
    assert sorted(modified) == ["chat.json", "manifest.json", "transcoded.mp4"]
    assert modified["manifest.json"] == max(modified.values())
    video = session.files.get(name="transcoded.mp4")
    assert sha256_of_object(s3, prefix + "transcoded.mp4") == video.sha256
    assert set(delivery.files.values_list("remote_path", flat=True)) == {
        f"s3://{s3.bucket}/{prefix}chat.json", f"s3://{s3.bucket}/{prefix}transcoded.mp4"
    }  # fmt: skip
    assert s3.incomplete_uploads(root) == []
    assert engine.run_delivery(delivery.pk) == "not due or taken by another worker"
    [message] = WebhookMessage.objects.filter(event_type="file_transfer")
    paths = {f["name"]: f["path"] for f in message.payload["files"]}
    assert paths["transcoded.mp4"] == f"s3://{s3.bucket}/{prefix}transcoded.mp4"
    urls = {f["name"]: f["url"] for f in message.payload["files"]}
    assert urls["transcoded.mp4"] == f"s3://{s3.bucket}/{prefix}transcoded.mp4"
    assert message.payload["destination"]["name"] == "awss3"
    assert message.payload["destination"]["account"] == s3.bucket
    [request] = webhook_receiver.wait_for(1)
    assert request.json()["files"] == message.payload["files"]


def test_a_wrong_secret_fails_at_once_with_a_readable_reason(world, s3, root):
    session = make_session(world.project, {"chat.json": ("chat", b"[]\n")})
    dest = s3_destination(world.project, s3, root)
    dest.secrets = {**dest.secrets, "secret_access_key": "not-the-right-secret-key-0000"}
    dest.save()
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = Delivery.objects.get()
    engine.run_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == State.FAILED and delivery.attempts == 1
    assert "secret" in delivery.last_error.lower() or "key" in delivery.last_error.lower()
    assert "not-the-right-secret-key-0000" not in delivery.last_error + str(delivery.log)


def test_a_missing_bucket_fails_at_once_naming_the_bucket(world, s3, root):
    session = make_session(world.project, {"chat.json": ("chat", b"[]\n")})
    s3_destination(world.project, s3, root, bucket="no-such-bucket-here")
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = Delivery.objects.get()
    engine.run_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == State.FAILED
    assert "no-such-bucket-here" in delivery.last_error


def test_a_stopped_server_means_retry_wait_then_the_delivery_completes(
    world, s3, root, monkeypatch
):
    session = make_session(world.project, {"transcoded.mp4": ("transcoded", 2 * PART + 1)})
    s3_destination(world.project, s3, root)
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = Delivery.objects.get()
    s3.stop()
    try:
        engine.run_delivery(delivery.pk)
        delivery.refresh_from_db()
        assert delivery.state == State.RETRY_WAIT and delivery.next_attempt_at
        assert delivery.last_error
    finally:
        s3.start()
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=delivery.created_at)
    monkeypatch.setattr(Conf, "SYNC", True)
    assert tasks.sweep() == 1
    delivery.refresh_from_db()
    assert delivery.state == State.DELIVERED and delivery.attempts == 2


def test_parts_left_by_a_dead_worker_are_aborted_when_the_sweep_resumes(
    world, s3, root, monkeypatch
):
    session = make_session(world.project, {"transcoded.mp4": ("transcoded", 2 * PART + 5)})
    s3_destination(world.project, s3, root)
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = Delivery.objects.get()
    key = f"{root}/{session.room.room_id}/{session.conf_num}/transcoded.mp4"
    # What a worker killed mid-upload leaves: a started multipart upload and
    # a running row whose lease is over.
    upload = s3.client().create_multipart_upload(Bucket=s3.bucket, Key=key)
    s3.client().upload_part(
        Bucket=s3.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * PART
    )
    assert engine.claim(delivery.pk, "dead-host:1:abc")
    Delivery.objects.filter(pk=delivery.pk).update(lease_expires_at=delivery.created_at)
    monkeypatch.setattr(Conf, "SYNC", True)
    assert tasks.sweep() == 1
    delivery.refresh_from_db()
    assert delivery.state == State.DELIVERED and delivery.attempts == 2
    assert s3.incomplete_uploads(root) == []
    assert sha256_of_object(s3, key) == session.files.get().sha256


def half_sent(server, key: str, data: bytes, parts: int) -> dict:
    """What a run killed after ``parts`` acknowledged parts saved: a multipart
    upload in the bucket and its ResumePoint state on the file's row."""
    client = server.client()
    upload_id = client.create_multipart_upload(
        Bucket=server.bucket, Key=key, ChecksumAlgorithm="SHA256"
    )["UploadId"]
    for number in range(1, parts + 1):
        client.upload_part(
            Bucket=server.bucket, Key=key, UploadId=upload_id, PartNumber=number,
            Body=data[(number - 1) * PART : number * PART], ChecksumAlgorithm="SHA256",
        )  # fmt: skip
    return {"upload_id": upload_id, "key": key, "part_size": PART, "size": len(data),
            "checksum": True}  # fmt: skip


def stored_bytes(session) -> bytes:
    from django.core.files.storage import storages

    rf = session.files.get()
    with storages["recordings"].open(rf.storage_path, "rb") as fh:
        return fh.read()


def test_the_next_run_continues_a_half_sent_file_from_the_parts_in_the_bucket(
    world, s3, root, monkeypatch
):
    session = make_session(world.project, {"transcoded.mp4": ("transcoded", 5 * PART + 11)})
    s3_destination(world.project, s3, root)
    scheduling.schedule_deliveries_for_session(session.pk)
    key = f"{root}/{session.room.room_id}/{session.conf_num}/transcoded.mp4"
    state = half_sent(s3, key, stored_bytes(session), parts=3)
    DeliveredFile.objects.update(resume_state=state, state=DeliveredFile.State.UPLOADING)
    monkeypatch.setattr(Conf, "SYNC", True)
    assert engine.run_delivery(Delivery.objects.get().pk) == "delivered"
    delivery = Delivery.objects.get()
    assert sha256_of_object(s3, key) == session.files.get().sha256
    assert s3.incomplete_uploads(root) == []
    assert delivery.speed and delivery.speed > 0
    resumed = [e["message"] for e in delivery.log if e["event"] == "resume"]
    assert resumed == ["transcoded.mp4: continuing the multipart upload: 3 of 6 parts are "
                       "already in the bucket, sending 3"]  # fmt: skip
    assert DeliveredFile.objects.get().resume_state == {}


def test_a_delivery_that_gives_up_aborts_its_unfinished_multipart_upload(world, s3, root):
    session = make_session(world.project, {"transcoded.mp4": ("transcoded", 3 * PART)})
    s3_destination(world.project, s3, root)
    scheduling.schedule_deliveries_for_session(session.pk)
    key = f"{root}/{session.room.room_id}/{session.conf_num}/transcoded.mp4"
    DeliveredFile.objects.update(resume_state=half_sent(s3, key, stored_bytes(session), parts=1))
    # A permanent error: retention removed the file before it was delivered.
    session.files.update(expired_at=timezone.now())
    assert engine.run_delivery(Delivery.objects.get().pk) == "failed"
    assert s3.incomplete_uploads(root) == []
    assert DeliveredFile.objects.get().resume_state == {}


def test_a_redelivery_aborts_the_unfinished_upload_and_sends_the_file_from_scratch(
    world, s3, root, monkeypatch
):
    session = make_session(world.project, {"transcoded.mp4": ("transcoded", 3 * PART)})
    s3_destination(world.project, s3, root)
    scheduling.schedule_deliveries_for_session(session.pk)
    key = f"{root}/{session.room.room_id}/{session.conf_num}/transcoded.mp4"
    state = half_sent(s3, key, stored_bytes(session), parts=2)
    DeliveredFile.objects.update(resume_state=state)
    monkeypatch.setattr(Conf, "SYNC", True)
    delivery_actions.do_redeliver_delivery(Delivery.objects.get(), acting_user=world.alice)
    delivery = Delivery.objects.get()
    assert delivery.state == State.DELIVERED, delivery.last_error
    assert not [e for e in delivery.log if e["event"] == "resume"]
    assert s3.incomplete_uploads(root) == []
    assert sha256_of_object(s3, key) == session.files.get().sha256
    with pytest.raises(Exception, match="NoSuchUpload"):
        s3.client().list_parts(Bucket=s3.bucket, Key=key, UploadId=state["upload_id"])


WORKER = textwrap.dedent(
    """
    import sys, time
    import django
    django.setup()
    from delivery import engine
    from delivery.destinations.s3 import S3Destination

    S3Destination.multipart_threshold = S3Destination.multipart_chunksize = {part}
    S3Destination.max_concurrency = 2
    real = engine.DeliveryRun.progress_for

    def slow_link(self, df):
        inner = real(self, df)

        def progress(count):
            # About 4 MiB/s, however the destination reports (per chunk or per
            # part): the test must catch the upload half-way.
            time.sleep(0.02 + count / (4 * 1024 * 1024))
            inner(count)

        return progress

    engine.DeliveryRun.progress_for = slow_link
    print(engine.run_delivery(int(sys.argv[1])), flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.pg
@pytest.mark.skipif(
    "sqlite" in django_settings.DATABASES["default"]["ENGINE"],
    reason="a worker process needs a database it can share (PostgreSQL); the in-process "
    "variant above covers SQLite",
)
def test_a_worker_killed_mid_transfer_loses_and_duplicates_nothing(world, s3, root, monkeypatch):
    size = 8 * PART + 3
    session = make_session(world.project, {"transcoded.mp4": ("transcoded", size)})
    s3_destination(world.project, s3, root)
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = Delivery.objects.get()
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "PORTAL_TESTING": "1",
        "DATA_DIR": str(django_settings.DATA_DIR),
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DELIVERY_LEASE_SECONDS": "2",
        "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",
        "FIELD_ENCRYPTION_KEYS": ",".join(django_settings.FIELD_ENCRYPTION_KEYS),
        "SECRET_KEY": django_settings.SECRET_KEY,
    }
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER.format(part=PART), str(delivery.pk)],
        env=env, cwd=django_settings.BASE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            delivery.refresh_from_db()
            if delivery.bytes_sent >= PART and s3.incomplete_uploads(root):
                break
            assert worker.poll() is None, worker.communicate()
            time.sleep(0.05)
        else:
            pytest.fail("the worker never got going")
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait(10)
    delivery.refresh_from_db()
    assert delivery.state == State.RUNNING and 0 < delivery.bytes_sent < size
    assert DeliveredFile.objects.get().state == DeliveredFile.State.UPLOADING
    monkeypatch.setattr(Conf, "SYNC", True)
    deadline = time.monotonic() + 10
    while tasks.sweep() == 0:  # until the dead worker's lease runs out
        assert time.monotonic() < deadline, "the sweep never took the delivery back"
        time.sleep(0.2)
    delivery.refresh_from_db()
    assert delivery.state == State.DELIVERED and delivery.attempts == 2
    key = f"{root}/{session.room.room_id}/{session.conf_num}/transcoded.mp4"
    assert sha256_of_object(s3, key) == session.files.get().sha256
    assert s3.incomplete_uploads(root) == []
    listing = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=root)["Contents"]
    assert sorted(o["Key"].rsplit("/", 1)[1] for o in listing) == [
        "manifest.json",
        "transcoded.mp4",
    ]
