"""The delivery engine against a real local folder: layout, verification,
manifest, webhooks once, retries with backoff, permanent errors, leases and
the sweep. Workers use threads, so these tests commit for real."""

from __future__ import annotations

import importlib
import json
import logging
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule

from delivery import connection_test, deliveries_views, engine, scheduling, tasks
from delivery.actions import deliveries as delivery_actions
from delivery.destinations.base import TransferError
from delivery.models import DeliveredFile, Delivery
from projects.models import AuditEvent
from recordings.models import Session
from tests.delivery import engine_support
from tests.delivery.engine_support import add_file, local_destination, make_session, transient
from tests.servers import webhook_receiver as receivers
from webhooks.actions import do_configure_webhook
from webhooks.models import WebhookMessage

# Local folder destinations under the test's tmp folder (DELIVERY_LOCAL_ROOTS).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("local_roots")]

State = Delivery.State
flaky = engine_support.flaky
sync_queue = engine_support.sync_queue
webhook_receiver = receivers.webhook_receiver
SECRET = "s3cr3t-do-not-leak-9f2c"


@pytest.fixture
def hook(world, webhook_receiver):
    return do_configure_webhook(world.project, url=webhook_receiver.url, acting_user=None)


@pytest.fixture
def session(world):
    return make_session(
        world.project,
        {
            "transcoded.mp4": ("transcoded", 3 * 1024 * 1024 + 17),
            "chat.json": ("chat", b'{"messages": []}\n'),
            "metadata.log": ("metadata", b"joined\nleft\n"),
            "alice.webm": ("individual", 1000),
        },
    )


def messages(event_type):
    return list(WebhookMessage.objects.filter(event_type=event_type).order_by("id"))


def the_delivery() -> Delivery:
    return Delivery.objects.select_related("session__room").get()


def make_due(delivery: Delivery) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def test_a_session_lands_at_root_room_conf_name_verified_with_the_manifest_last(
    world, session, tmp_path, hook, sync_queue, webhook_receiver
):
    dest = local_destination(world.project, tmp_path / "nas", types=("transcoded", "chat"))
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = the_delivery()
    assert delivery.state == State.DELIVERED, delivery.last_error
    folder = tmp_path / "nas" / "recordings" / session.room.room_id / session.conf_num
    assert sorted(p.name for p in folder.iterdir()) == [
        "chat.json",
        "manifest.json",
        "transcoded.mp4",
    ]
    for rf in session.files.filter(type__in=["transcoded", "chat"]):
        assert (folder / rf.name).stat().st_size == rf.size
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [f["name"] for f in manifest["files"]] == ["chat.json", "transcoded.mp4"]
    assert manifest["files"][1]["sha256"] == session.files.get(name="transcoded.mp4").sha256
    written = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert written["manifest.json"] >= max(written.values())
    files = list(delivery.files.select_related("recording_file"))
    assert {f.state for f in files} == {DeliveredFile.State.VERIFIED}
    assert {f.remote_path for f in files} == {
        str(folder / "chat.json"),
        str(folder / "transcoded.mp4"),
    }
    assert delivery.bytes_sent == delivery.bytes_total == sum(f.recording_file.size for f in files)
    assert delivery.attempts == 1 and delivery.manifest_written_at and delivery.lease_owner == ""
    assert any("uploaded and verified transcoded.mp4" in e["message"] for e in delivery.log)
    [message] = messages("file_transfer")
    assert message.dedupe_key == f"delivery:{delivery.pk}:file_transfer"
    assert message.payload["destination"] == {
        "name": "local", "host": "", "account": "", "label": dest.name,
    }  # fmt: skip
    assert isinstance(message.payload["trans_date"], int)
    assert sorted(message.payload["files"], key=lambda f: f["name"]) == [
        {"url": f"file://{folder / 'chat.json'}", "type": "chat", "name": "chat.json",
         "path": str(folder / "chat.json"),
         "size": 17, "sha256": session.files.get(name="chat.json").sha256},
        {"url": f"file://{folder / 'transcoded.mp4'}", "type": "transcoded",
         "name": "transcoded.mp4", "path": str(folder / "transcoded.mp4"),
         "size": 3 * 1024 * 1024 + 17, "sha256": session.files.get(name="transcoded.mp4").sha256},
    ]  # fmt: skip
    [request] = webhook_receiver.wait_for(1)
    assert request.json()["type"] == "file_transfer"


def test_running_a_delivered_delivery_again_sends_nothing_and_a_redeliver_is_a_new_generation(
    world, session, tmp_path, hook, sync_queue
):
    local_destination(world.project, tmp_path / "nas")
    scheduling.schedule_deliveries_for_session(session.pk)
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = the_delivery()
    assert engine.run_delivery(delivery.pk) == "not due or taken by another worker"
    delivery_actions.do_redeliver_delivery(delivery, acting_user=world.alice)
    delivery.refresh_from_db()
    assert delivery.state == State.DELIVERED
    assert any("already at the destination" in e["message"] for e in delivery.log)
    first, second = messages("file_transfer")
    assert second.dedupe_key == f"delivery:{delivery.pk}:file_transfer:2"
    assert delivery.generation == 2 and Delivery.objects.count() == 1
    audit = AuditEvent.objects.filter(action=AuditEvent.Action.DELIVERY_CHANGED).get()
    assert audit.actor == world.alice and audit.detail["change"] == "redeliver"


def test_a_retry_skips_files_already_verified(world, session, tmp_path, flaky, sync_queue):
    flaky.fail_names = {"transcoded.mp4": transient("Connection reset by peer; retrying")}
    local_destination(world.project, tmp_path / "nas", kind="flaky", write_manifest=False)
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = the_delivery()
    assert delivery.state == State.RETRY_WAIT
    states = {
        f.recording_file.name: f.state for f in delivery.files.select_related("recording_file")
    }
    assert states == {"chat.json": "verified", "transcoded.mp4": "failed"}
    flaky.uploads.clear()
    make_due(delivery)
    assert tasks.sweep() == 1
    delivery.refresh_from_db()
    assert delivery.state == State.DELIVERED and delivery.attempts == 2
    assert flaky.uploads == ["transcoded.mp4"]


def test_a_transient_error_waits_with_exponential_backoff_then_gives_up(
    world, session, tmp_path, flaky, settings, hook
):
    settings.DELIVERY_MAX_ATTEMPTS = 3
    local_destination(world.project, tmp_path / "nas", kind="flaky")
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = the_delivery()
    waits = []
    for _attempt in range(3):
        flaky.fail_names = {"chat.json": transient("Server busy (503); retrying")}
        before = timezone.now()
        engine.run_delivery(delivery.pk)
        delivery.refresh_from_db()
        if delivery.state == State.RETRY_WAIT:
            waits.append((delivery.next_attempt_at - before).total_seconds())
            assert engine.run_delivery(delivery.pk) == "not due or taken by another worker"
            make_due(delivery)
    assert [round(w / 60) for w in waits] == [1, 2]
    assert delivery.state == State.FAILED and delivery.attempts == 3
    assert "Server busy (503)" in delivery.last_error
    [failed] = messages("delivery_failed")
    assert failed.dedupe_key == f"delivery:{delivery.pk}:delivery_failed:3"
    assert "Server busy" in failed.payload["error"]
    assert not messages("file_transfer")


def test_backoff_doubles_from_the_base_up_to_the_cap(settings):
    settings.DELIVERY_RETRY_BASE_SECONDS = 60
    settings.DELIVERY_RETRY_MAX_SECONDS = 6 * 3600
    delays = [engine.backoff(n).total_seconds() for n in range(1, 12)]
    assert delays[:4] == [60, 120, 240, 480]
    assert delays[-1] == 6 * 3600 and max(delays) == 6 * 3600


def test_a_permanent_error_fails_at_once_with_a_readable_reason(world, session, tmp_path, hook):
    local_destination(world.project, tmp_path / "nas")
    dest = world.project.destinations.get()
    dest.config["path"] = str(tmp_path / "unmounted")
    dest.save()
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = the_delivery()
    engine.run_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == State.FAILED and delivery.attempts == 1
    assert (
        delivery.last_error == f"Folder {tmp_path / 'unmounted'} does not exist or is not mounted"
    )
    [failed] = messages("delivery_failed")
    assert failed.payload["error"] == delivery.last_error
    assert {f["name"] for f in failed.payload["files"]} == {"chat.json", "transcoded.mp4"}


def test_an_unexpected_exception_is_retried_and_logged_without_the_secret(
    world, session, tmp_path, flaky, caplog
):
    local_destination(world.project, tmp_path / "nas", kind="flaky", secrets={"password": SECRET})
    flaky.fail_names = {"chat.json": RuntimeError(f"boom with {SECRET} inside")}
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = the_delivery()
    with caplog.at_level(logging.INFO):
        engine.run_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == State.RETRY_WAIT
    assert "RuntimeError" in delivery.last_error and SECRET not in delivery.last_error
    assert "Traceback" in caplog.text and SECRET not in caplog.text
    assert SECRET not in json.dumps(delivery.log)


def test_a_password_that_is_an_ordinary_word_does_not_garble_the_reason(
    world, session, tmp_path, flaky
):
    # The reason is the portal's own sentence; masking "mounted" in it would
    # print "does not exist or is not ********".
    local_destination(world.project, tmp_path / "nas", kind="flaky", secrets={"password": "mounted"})
    dest = world.project.destinations.get()
    dest.config["path"] = str(tmp_path / "unmounted")
    dest.save()
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = the_delivery()
    engine.run_delivery(delivery.pk)
    delivery.refresh_from_db()
    expected = f"Folder {tmp_path / 'unmounted'} does not exist or is not mounted"
    assert delivery.last_error == expected
    assert "********" not in json.dumps(delivery.log)


def test_two_workers_never_both_claim_a_delivery(world, session, tmp_path):
    local_destination(world.project, tmp_path / "nas")
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = the_delivery()
    wins, barrier = [], threading.Barrier(6)

    def contend(n):
        try:
            barrier.wait()
            if engine.claim(delivery.pk, f"worker-{n}"):
                wins.append(n)
        finally:
            connection.close()

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    delivery.refresh_from_db()
    assert delivery.lease_owner == f"worker-{wins[0]}" and delivery.attempts == 1


def test_a_second_run_on_a_running_delivery_does_nothing(world, session, tmp_path, flaky, hook):
    local_destination(world.project, tmp_path / "nas", kind="flaky")
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = the_delivery()
    flaky.hold = True
    results = []

    def first():
        try:
            results.append(engine.run_delivery(delivery.pk))
        finally:
            connection.close()

    worker = threading.Thread(target=first)
    worker.start()
    assert flaky.started.wait(10)
    assert engine.run_delivery(delivery.pk) == "not due or taken by another worker"
    assert tasks.sweep() == 0
    flaky.release.set()
    worker.join(30)
    assert results == ["delivered"]
    assert len(messages("file_transfer")) == 1
    assert sorted(flaky.uploads) == ["chat.json", "manifest.json", "transcoded.mp4"]


def test_an_expired_lease_is_picked_up_by_the_sweep(world, session, tmp_path, monkeypatch):
    local_destination(world.project, tmp_path / "nas")
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = the_delivery()
    # As a worker that died mid-transfer leaves it.
    assert engine.claim(delivery.pk, "dead-host:1:abc")
    assert tasks.sweep() == 0  # the lease still holds
    Delivery.objects.filter(pk=delivery.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    monkeypatch.setattr(Conf, "SYNC", True)
    assert tasks.sweep() == 1
    delivery.refresh_from_db()
    assert delivery.state == State.DELIVERED and delivery.attempts == 2


def test_a_worker_that_lost_its_lease_stops_without_writing(world, session, tmp_path, flaky):
    local_destination(world.project, tmp_path / "nas", kind="flaky")
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = the_delivery()
    flaky.hold = True
    results = []
    worker = threading.Thread(
        target=lambda: (results.append(engine.run_delivery(delivery.pk)), connection.close())
    )
    worker.start()
    assert flaky.started.wait(10)
    delivery_actions.do_redeliver_delivery(delivery, acting_user=world.alice)  # a person asks again: the running worker's lease ends
    flaky.release.set()
    worker.join(30)
    assert results == ["lease lost"]
    delivery.refresh_from_db()
    assert delivery.state == State.QUEUED and delivery.attempts == 0


def test_files_ready_early_upload_but_are_announced_once_when_final(
    world, tmp_path, sync_queue, hook
):
    session = make_session(world.project, {"live.mp4": ("live", 2000)}, state="live")
    local_destination(world.project, tmp_path / "nas", types=("live", "transcoded"))
    scheduling.schedule_deliveries_for_session(session.pk, {"live"})
    delivery = the_delivery()
    # Uploaded and verified at once, but the session is not over: no webhook.
    assert delivery.state == State.WAITING and delivery.files.get().state == "verified"
    assert delivery.lease_owner == "" and not messages("file_transfer")
    assert not list((tmp_path / "nas").rglob("manifest.json"))
    add_file(session, "transcoded.mp4", "transcoded", 5000)
    scheduling.schedule_deliveries_for_session(session.pk, {"transcoded", "chat"}, final=True)
    delivery.refresh_from_db()
    assert delivery.state == State.DELIVERED and delivery.generation == 1
    assert delivery.files.count() == 2 and delivery.bytes_total == 7000
    assert delivery.bytes_sent == 7000 and delivery.percent == 100
    [message] = messages("file_transfer")
    assert message.dedupe_key == f"delivery:{delivery.pk}:file_transfer"
    assert [f["name"] for f in message.payload["files"]] == ["live.mp4", "transcoded.mp4"]
    assert message.payload["missing"] == []


def test_only_enabled_destinations_and_chosen_types_get_deliveries(world, session, tmp_path):
    local_destination(world.project, tmp_path / "a", types=("live",), name="live only")
    local_destination(world.project, tmp_path / "b", name="off", enabled=False)
    local_destination(world.project, tmp_path / "c", types=("individual",), name="raw")
    scheduling.schedule_deliveries_for_session(session.pk, {"chat", "metadata"})
    assert not Delivery.objects.exists()
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = the_delivery()
    assert delivery.destination.name == "raw"
    assert [f.recording_file.name for f in delivery.files.all()] == ["alice.webm"]


def test_retry_failed_and_deliver_past_sessions_for_a_destination_added_later(
    world, session, tmp_path, sync_queue
):
    other = make_session(world.project, {"transcoded.mp4": ("transcoded", 100)})
    broken = local_destination(world.project, tmp_path / "nas", name="broken")
    broken.config["path"] = str(tmp_path / "unmounted")
    broken.save()
    scheduling.schedule_deliveries_for_session(session.pk)
    assert the_delivery().state == State.FAILED
    broken.config["path"] = str(tmp_path / "nas")
    broken.save()
    assert delivery_actions.do_retry_failed(world.project, acting_user=world.alice) == 1
    assert the_delivery().state == State.DELIVERED
    later = local_destination(world.project, tmp_path / "later", name="later")
    today = timezone.now().date()
    count = delivery_actions.do_deliver_past_sessions(
        world.project, since=today, until=today, destination=later, acting_user=world.alice
    )
    assert count == 2
    assert set(Delivery.objects.filter(destination=later).values_list("state", flat=True)) == {
        State.DELIVERED
    }
    assert (tmp_path / "later" / "recordings" / other.room.room_id / other.conf_num).is_dir()
    assert (
        delivery_actions.do_deliver_past_sessions(
            world.project, since=today, until=None, destination=later, acting_user=None
        )
        == 0
    )
    counts = deliveries_views.delivery_counts(world.project)
    assert counts[State.DELIVERED] == 3 and sum(counts.values()) == 3
    actions = set(AuditEvent.objects.values_list("detail__change", flat=True))
    assert {"retry_failed", "deliver_past_sessions"} <= actions


def test_testing_a_destination_writes_and_removes_a_probe(world, tmp_path):
    good = local_destination(world.project, tmp_path / "nas")
    assert "probe" in connection_test.check_connection(good)
    assert list((tmp_path / "nas" / "recordings").iterdir()) == []
    bad = local_destination(world.project, tmp_path / "x", name="bad")
    bad.config["path"] = str(tmp_path / "missing")
    bad.save()
    with pytest.raises(TransferError, match="does not exist or is not mounted"):
        connection_test.check_connection(bad)


def test_the_sweep_schedule_migration_is_idempotent():
    from django.apps import apps

    migration = importlib.import_module("delivery.migrations.0003_delivery_sweep_schedule")
    migration.create_schedule(apps, None)
    migration.create_schedule(apps, None)
    schedule = Schedule.objects.get(name="delivery-sweep")
    assert schedule.func == "delivery.tasks.sweep" and schedule.minutes == 1
    assert schedule.schedule_type == Schedule.MINUTES and schedule.repeats == -1


def test_secrets_that_cannot_be_decrypted_put_the_delivery_in_retry_with_the_reason(
    world, session, tmp_path
):
    dest = local_destination(world.project, tmp_path / "nas", secrets={"password": SECRET})
    scheduling.schedule_deliveries_for_session(session.pk)
    with connection.cursor() as cursor:
        table = dest._meta.db_table
        cursor.execute(f"UPDATE {table} SET secrets = %s WHERE id = %s", ["not-a-token", dest.pk])
    delivery = the_delivery()
    assert engine.run_delivery(delivery.pk) == "retry_wait"
    delivery.refresh_from_db()
    assert delivery.state == State.RETRY_WAIT and delivery.lease_owner == ""
    assert "cannot be decrypted with FIELD_ENCRYPTION_KEYS" in delivery.last_error


def test_webhooks_of_each_delivery_are_found_by_their_keys(world, tmp_path, sync_queue, hook):
    session = make_session(world.project, {"live.mp4": ("live", 10)}, state="live")
    local_destination(world.project, tmp_path / "nas", types=("live", "transcoded"))
    scheduling.schedule_deliveries_for_session(session.pk, {"live"})
    add_file(session, "transcoded.mp4", "transcoded", 20)
    Session.objects.filter(pk=session.pk).update(state="ready")
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = the_delivery()
    delivery_actions.do_redeliver_delivery(delivery, acting_user=None)
    found = deliveries_views.webhooks_by_delivery(world.project, [delivery])
    assert [m.dedupe_key for m in found[delivery.pk]] == [
        f"delivery:{delivery.pk}:file_transfer",
        f"delivery:{delivery.pk}:file_transfer:2",
    ]


def test_the_sweep_rescues_queued_rows_only_when_the_broker_has_nothing_ready(
    world, session, tmp_path, monkeypatch
):
    destination = local_destination(world.project, tmp_path / "nas")
    delivery = Delivery.objects.create(session=session, destination=destination)
    Delivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() - timedelta(minutes=5)
    )
    woken = []
    monkeypatch.setattr(scheduling, "wake", woken.append)
    monkeypatch.setattr(tasks, "broker_is_idle", lambda: False)  # a backlog waits for workers
    assert tasks.sweep() == 0 and woken == []
    monkeypatch.setattr(tasks, "broker_is_idle", lambda: True)  # nothing pending: it was lost
    assert tasks.sweep() == 1 and woken == [delivery.pk]
