"""Upload early, announce once (issue 15): files start uploading as soon as the
session's life makes them ready, but each destination gets exactly one
``file_transfer`` per session (and manifest.json written once, last), when
processing finished or failed; a person's Redeliver is one more. Against a
real webhook receiver, moto's S3 server (a versioned bucket counts every write
of manifest.json) and a local folder."""

from __future__ import annotations

import json
import time

import pytest

from delivery import engine, tasks
from delivery.actions import deliveries as delivery_actions
from delivery.models import Delivery, DeliveryDestination
from recordings import lifecycle
from recordings.lifecycle import Event
from recordings.models import Session
from tests.delivery import engine_support
from tests.delivery.engine_support import add_file, local_destination, make_session
from tests.servers import moto_s3
from tests.servers import webhook_receiver as receivers
from webhooks.actions import do_configure_webhook

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("local_roots")]

State = Delivery.State
s3_server = moto_s3.s3_server
s3 = moto_s3.s3
webhook_receiver = receivers.webhook_receiver
sync_queue = engine_support.sync_queue
EVERY_TYPE = ("individual", "chat", "metadata", "transcoded")


@pytest.fixture
def hook(world, webhook_receiver):
    do_configure_webhook(world.project, url=webhook_receiver.url, acting_user=None)
    return webhook_receiver


@pytest.fixture
def bucket(s3, request):
    """A bucket of the test's own with versioning on: every PUT of a key is a
    version, so the writes of manifest.json can be counted."""
    name = "announce-" + request.node.name.replace("_", "-")[-40:].strip("-").lower()
    client = s3.client()
    client.create_bucket(Bucket=name)
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def s3_destination(
    project, server, bucket: str, types=EVERY_TYPE, name="bucket", root="rec"
) -> DeliveryDestination:
    full = server.destination_config(bucket=bucket, root=root)
    secret_keys = ("access_key_id", "secret_access_key")
    return DeliveryDestination.objects.create(
        project=project, name=name, kind="s3", file_types=list(types),
        config={k: v for k, v in full.items() if k not in secret_keys},
        secrets={k: full[k] for k in secret_keys},
    )  # fmt: skip


def versions(server, bucket: str, key: str) -> int:
    listing = server.client().list_object_versions(Bucket=bucket, Prefix=key)
    return len([v for v in listing.get("Versions", []) if v["Key"] == key])


def a_session_ending(project) -> Session:
    """A session just ended: individual recordings, chat and metadata are in,
    processing is under way."""
    session = make_session(
        project,
        {
            "alice.webm": ("individual", 40_000),
            "bob.webm": ("individual", 30_000),
            "chat.json": ("chat", b'{"messages": []}\n'),
            "metadata.log": ("metadata", b"joined\nleft\n"),
        },
        state=Session.State.PROCESSING,
    )
    lifecycle.files_ready(session.pk, Event.SESSION_ENDED)
    return session


def processing_done(session: Session) -> None:
    add_file(session, "transcoded.mp4", "transcoded", 120_000)
    Session.objects.filter(pk=session.pk).update(state=Session.State.READY)
    lifecycle.files_ready(session.pk, Event.PROCESSING_DONE)


def processing_failed(session: Session) -> None:
    Session.objects.filter(pk=session.pk).update(
        state=Session.State.FAILED, processing_error="ffmpeg could not read alice.webm"
    )
    lifecycle.files_ready(session.pk, Event.PROCESSING_FAILED)


def transfers(receiver, count: int) -> list[dict]:
    """The file_transfer bodies received, after waiting for ``count``, and a
    little longer to catch any extra one."""
    receiver.wait_for(count, timeout=20)
    try:
        receiver.wait_for(count + 1, timeout=1.5)
    except AssertionError:
        pass
    return [r.json() for r in receiver.requests if r.json()["type"] == "file_transfer"]


def test_the_table_says_which_types_are_ready_at_each_event():
    ready = {event: set(types) for event, (types, _final) in lifecycle.READY_AT.items()}
    assert ready[Event.LIVE_UPLOADED] == {"live"}
    assert ready[Event.SESSION_ENDED] == {"live", "individual", "chat", "metadata"}
    assert ready[Event.PROCESSING_DONE] == set(EVERY_TYPE) | {"live"}
    assert ready[Event.PROCESSING_FAILED] == {"live", "individual", "chat", "metadata"}
    final = {event for event, (_types, final) in lifecycle.READY_AT.items() if final}
    assert final == {Event.PROCESSING_DONE, Event.PROCESSING_FAILED}


def test_every_type_uploads_early_and_is_announced_once_with_the_manifest_written_once(
    world, s3, bucket, hook, sync_queue, tmp_path
):
    s3_destination(world.project, s3, bucket)
    local_destination(world.project, tmp_path / "nas", types=EVERY_TYPE, name="nas")
    session = a_session_ending(world.project)
    prefix = f"rec/{session.room.room_id}/{session.conf_num}/"
    # Session end: the recordings, chat and metadata are already there,
    # overlapping the transcode, but nothing is announced and no manifest.
    listing = s3.client().list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
    assert sorted(o["Key"].removeprefix(prefix) for o in listing) == [
        "alice.webm", "bob.webm", "chat.json", "metadata.log",
    ]  # fmt: skip
    assert set(Delivery.objects.values_list("state", flat=True)) == {State.WAITING}
    folder = tmp_path / "nas" / "recordings" / session.room.room_id / session.conf_num
    assert sorted(p.name for p in folder.iterdir()) == [
        "alice.webm", "bob.webm", "chat.json", "metadata.log",
    ]  # fmt: skip
    assert hook.requests == []

    processing_done(session)
    bodies = transfers(hook, 2)
    assert len(bodies) == 2  # one per destination, not two each
    for body in bodies:
        assert body["conf_num"] == session.conf_num and body["missing"] == []
        assert sorted((f["type"], f["name"]) for f in body["files"]) == [
            ("chat", "chat.json"), ("individual", "alice.webm"), ("individual", "bob.webm"),
            ("metadata", "metadata.log"), ("transcoded", "transcoded.mp4"),
        ]  # fmt: skip
    assert {b["destination"]["label"] for b in bodies} == {"bucket", "nas"}
    assert versions(s3, bucket, prefix + "manifest.json") == 1
    for name in ("alice.webm", "chat.json", "transcoded.mp4"):
        assert versions(s3, bucket, prefix + name) == 1  # nothing sent twice
    manifest = json.loads((folder / "manifest.json").read_text())
    assert len(manifest["files"]) == 5 and "missing" not in manifest
    written = (folder / "manifest.json").stat().st_mtime_ns
    assert written >= max(p.stat().st_mtime_ns for p in folder.iterdir())

    # The sweep, a repeated hand-off and a stray run change nothing.
    lifecycle.files_ready(session.pk, Event.PROCESSING_DONE)
    tasks.sweep()
    for delivery in Delivery.objects.all():
        assert delivery.state == State.DELIVERED
        assert engine.run_delivery(delivery.pk) == "not due or taken by another worker"
    assert len(transfers(hook, 2)) == 2
    assert versions(s3, bucket, prefix + "manifest.json") == 1
    assert (folder / "manifest.json").stat().st_mtime_ns == written


def test_failed_processing_announces_what_the_session_has_and_lists_what_is_missing(
    world, s3, bucket, hook, sync_queue
):
    s3_destination(world.project, s3, bucket)
    s3_destination(world.project, s3, bucket, types=("transcoded",), name="transcodes",
                   root="video")  # fmt: skip
    session = a_session_ending(world.project)
    processing_failed(session)
    bodies = {b["destination"]["label"]: b for b in transfers(hook, 2)}
    assert sorted(bodies) == ["bucket", "transcodes"]
    missing = [{"type": "transcoded", "reason": lifecycle.TRANSCODE_FAILED}]
    assert sorted(f["name"] for f in bodies["bucket"]["files"]) == [
        "alice.webm", "bob.webm", "chat.json", "metadata.log",
    ]  # fmt: skip
    assert bodies["bucket"]["missing"] == missing
    # A destination that wanted only the transcode still hears why nothing came.
    assert bodies["transcodes"]["files"] == [] and bodies["transcodes"]["missing"] == missing
    key = f"rec/{session.room.room_id}/{session.conf_num}/manifest.json"
    assert versions(s3, bucket, key) == 1
    body = s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    assert json.loads(body)["missing"] == missing
    # The reason is the portal's own words, never ffmpeg's.
    assert "ffmpeg" not in json.dumps(list(bodies.values()))


def test_a_redeliver_is_a_new_generation_with_its_own_single_file_transfer(
    world, s3, bucket, hook, sync_queue
):
    s3_destination(world.project, s3, bucket)
    session = a_session_ending(world.project)
    processing_done(session)
    [first] = transfers(hook, 1)
    delivery = Delivery.objects.get()
    delivery_actions.do_redeliver_delivery(delivery, acting_user=world.alice)
    bodies = transfers(hook, 2)
    assert len(bodies) == 2
    assert sorted(f["name"] for f in bodies[1]["files"]) == sorted(
        f["name"] for f in first["files"]
    )
    delivery.refresh_from_db()
    assert delivery.generation == 2 and delivery.state == State.DELIVERED
    key = f"rec/{session.room.room_id}/{session.conf_num}/manifest.json"
    # Identical content is found in place and left: still written once.
    assert versions(s3, bucket, key) == 1
    ids = [r.headers["webhook-id"] for r in hook.requests]
    assert len(set(ids)) == 2  # two events, not a resend of one


def test_a_live_only_destination_waits_for_the_end_of_processing(world, hook, sync_queue, tmp_path):
    local_destination(world.project, tmp_path / "nas", types=("live",))
    session = make_session(world.project, {"live-1.mp4": ("live", 3000)}, state=Session.State.LIVE)
    lifecycle.files_ready(session.pk, Event.LIVE_UPLOADED)
    add_file(session, "live-2.mp4", "live", 4000)
    lifecycle.files_ready(session.pk, Event.LIVE_UPLOADED)
    delivery = Delivery.objects.get()
    assert delivery.state == State.WAITING and delivery.bytes_sent == 7000
    Session.objects.filter(pk=session.pk).update(state=Session.State.PROCESSING)
    lifecycle.files_ready(session.pk, Event.SESSION_ENDED)
    assert hook.requests == []
    Session.objects.filter(pk=session.pk).update(state=Session.State.READY)
    lifecycle.files_ready(session.pk, Event.PROCESSING_DONE)
    [body] = transfers(hook, 1)
    assert sorted(f["name"] for f in body["files"]) == ["live-1.mp4", "live-2.mp4"]


@pytest.mark.slow
def test_through_real_processes_a_session_gets_one_complete_file_transfer(tmp_path):
    """gunicorn + qcluster: a 2-participant session uploaded through the ingest
    API and ended; the local folder gets every file and one manifest, the
    webhook consumer one file_transfer listing all five files."""
    from tests.delivery.portal_session import PORTAL_ENV, PortalClient, file_transfers, make_media
    from tests.servers.portal import PortalProcesses

    media = make_media(tmp_path / "media", participants=2, seconds=4)
    target = tmp_path / "dest"
    target.mkdir()
    portal = PortalProcesses(extra_env={**PORTAL_ENV, "DELIVERY_LOCAL_ROOTS": str(target)})
    try:
        portal.setup()
        creds = portal.create_project("Announce")
        portal.manage("delivery", "configure", creds["APP_ID"], "--kind", "local", "--types",
                      "individual,chat,metadata,transcoded", "--set", f"path={target}")  # fmt: skip
        with receivers.WebhookReceiver() as receiver:
            portal.manage("webhook", "configure", creds["APP_ID"], "--url", receiver.url)
            portal.start_web()
            portal.start_worker()
            client = PortalClient(portal.public_url, creds["APP_ID"], creds["APP_KEY"])
            conf_num = client.start(client.room())
            client.upload(conf_num, media)
            ended = client.end(conf_num)
            while not file_transfers(receiver, conf_num):
                assert ended + 120 > time.monotonic(), "no file_transfer in 120 s"
                time.sleep(0.2)
            time.sleep(3)  # time for a wrong second one to arrive
            [body] = file_transfers(receiver, conf_num)
        assert sorted(f["type"] for f in body["files"]) == [
            "chat", "individual", "individual", "metadata", "transcoded",
        ]  # fmt: skip
        assert body["missing"] == []
        [manifest] = list(target.rglob("manifest.json"))
        listed = json.loads(manifest.read_text())["files"]
        assert sorted(f["name"] for f in listed) == sorted(f["name"] for f in body["files"])
        assert sorted(p.name for p in manifest.parent.iterdir()) == sorted(
            [*(f["name"] for f in body["files"]), "manifest.json"]
        )
    finally:
        portal.stop()


def test_the_sweep_completes_a_delivery_whose_hand_off_was_lost(
    world, hook, sync_queue, tmp_path
):
    local_destination(world.project, tmp_path / "nas", types=EVERY_TYPE)
    session = a_session_ending(world.project)
    assert Delivery.objects.get().state == State.WAITING
    # Processing finished, but the worker died before its hand-off ran.
    add_file(session, "transcoded.mp4", "transcoded", 9000)
    Session.objects.filter(pk=session.pk).update(state=Session.State.READY)
    assert hook.requests == []
    tasks.sweep()
    [body] = transfers(hook, 1)
    assert len(body["files"]) == 5 and Delivery.objects.get().state == State.DELIVERED


def test_a_real_processing_failure_is_announced_once_with_what_is_missing(
    world, hook, sync_queue, tmp_path
):
    from recordings.processing import process_session

    local_destination(world.project, tmp_path / "nas", types=EVERY_TYPE)
    session = a_session_ending(world.project)  # its "recordings" are random bytes
    assert process_session(session.pk).state == Session.State.FAILED
    [body] = transfers(hook, 1)
    assert sorted(f["name"] for f in body["files"]) == [
        "alice.webm", "bob.webm", "chat.json", "metadata.log",
    ]  # fmt: skip
    assert body["missing"] == [{"type": "transcoded", "reason": lifecycle.TRANSCODE_FAILED}]


def ended_and_processed(project, folder) -> Delivery:
    """A local-folder delivery of a session whose processing is done, its
    tasks queued on the ORM broker (no cluster runs them here)."""
    local_destination(project, folder, types=EVERY_TYPE)
    session = a_session_ending(project)
    processing_done(session)
    return Delivery.objects.get()


def test_the_worker_that_completes_a_delivery_sends_its_file_transfer_before_it_returns(
    world, hook, tmp_path
):
    from webhooks.models import WebhookMessage
    from webhooks.tasks import send_message_task

    delivery = ended_and_processed(world.project, tmp_path / "nas")
    assert hook.requests == []
    assert tasks.run_delivery(delivery.pk) == "delivered"
    # No broker hop: the consumer has heard by the time the worker is done.
    [request] = hook.requests
    assert request.json()["type"] == "file_transfer" and len(request.json()["files"]) == 5
    message = WebhookMessage.objects.get(event_type="file_transfer")
    assert message.state == WebhookMessage.State.DELIVERED
    # The send task queued with the message comes round later and finds it sent.
    assert send_message_task(message.pk) == "not due"
    assert len(hook.requests) == 1


def test_a_file_transfer_refused_by_its_consumer_keeps_its_retries_and_the_delivery_stays_done(
    world, hook, tmp_path
):
    from webhooks.models import WebhookMessage
    from webhooks.tasks import send_message_task

    delivery = ended_and_processed(world.project, tmp_path / "nas")
    hook.fail_next(1, status=503)
    assert tasks.run_delivery(delivery.pk) == "delivered"
    assert len(hook.requests) == 1
    message = WebhookMessage.objects.get(event_type="file_transfer")
    assert message.state == WebhookMessage.State.RETRY and message.attempts == 1
    assert send_message_task(message.pk) == "not due"  # its retry is not due yet
    assert Delivery.objects.get().state == State.DELIVERED
