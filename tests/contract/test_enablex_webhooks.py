"""Webhook bodies in EnableX's notification shapes (with the portal's
additions), per-endpoint event selection and the legacy event name, checked on
what a real HTTP receiver gets."""

from __future__ import annotations

import time

import pytest
from django.core.management import call_command

from delivery import scheduling
from delivery.destinations import destination_for
from recordings.events import queue_session_event
from tests.delivery import engine_support
from tests.delivery.engine_support import local_destination, make_session
from tests.servers import webhook_receiver as receivers
from webhooks import outbox
from webhooks.actions import do_configure_webhook
from webhooks.models import WebhookEndpoint, WebhookMessage

pytestmark = pytest.mark.django_db(transaction=True)

webhook_receiver = receivers.webhook_receiver
sync_queue = engine_support.sync_queue
FILE_KEYS = {"url", "name", "size", "sha256", "participant"}


@pytest.fixture
def session(world):
    return make_session(world.project, {
        "alice.webm": ("individual", b"a" * 100),
        "bob.webm": ("individual", b"b" * 200),
        "transcoded.mp4": ("transcoded", b"t" * 300),
        "chat.json": ("chat", b"[]\n"),
    })  # fmt: skip


def received(receiver, count: int) -> list[dict]:
    return [request.json() for request in receiver.wait_for(count)]


def test_recording_lists_url_strings_and_adds_files(world, session, webhook_receiver, sync_queue):
    do_configure_webhook(world.project, url=webhook_receiver.url, acting_user=None)
    individual = list(session.files.filter(type="individual").order_by("name"))
    before = int(time.time())
    queue_session_event(session, "recording", individual, dedupe_key="t:recording")
    [body] = received(webhook_receiver, 1)
    assert body["type"] == "recording"
    assert (body["app_id"], body["room_id"], body["conf_num"]) == (
        world.app_id, session.room.room_id, session.conf_num)  # fmt: skip
    assert isinstance(body["trans_date"], int) and before <= body["trans_date"] <= time.time()
    assert body["recording"] == [f.public_url for f in individual]
    assert all(FILE_KEYS == set(f) for f in body["files"])
    assert [(f["name"], f["size"]) for f in body["files"]] == [
        ("alice.webm", 100),
        ("bob.webm", 200),
    ]


def test_transcoded_has_the_url_string_stage_and_file_size(
    world, session, webhook_receiver, sync_queue
):
    do_configure_webhook(world.project, url=webhook_receiver.url, acting_user=None)
    composite = session.files.get(type="transcoded")
    queue_session_event(session, "transcoded", [composite], dedupe_key="t:transcoded")
    [body] = received(webhook_receiver, 1)
    assert body["recording"] == composite.public_url
    assert body["stage"] == "completed" and body["file_size"] == 300
    assert isinstance(body["trans_date"], int)
    assert body["files"][0]["sha256"] == composite.sha256


def test_an_endpoint_gets_only_the_events_it_chose(world, session, webhook_receiver, sync_queue):
    do_configure_webhook(
        world.project, url=webhook_receiver.url, events=["transcoded"], acting_user=None
    )
    individual = list(session.files.filter(type="individual"))
    assert queue_session_event(session, "recording", individual, dedupe_key="a") is None
    queue_session_event(session, "transcoded", [session.files.get(type="transcoded")],
                        dedupe_key="b")  # fmt: skip
    [body] = received(webhook_receiver, 1)
    assert body["type"] == "transcoded"
    assert not WebhookMessage.objects.filter(event_type="recording").exists()


@pytest.mark.parametrize("legacy", [False, True])
def test_file_transfer_in_enablex_shape_with_the_legacy_name_on_request(
    world, session, local_roots, webhook_receiver, sync_queue, legacy
):
    do_configure_webhook(world.project, url=webhook_receiver.url, legacy_event_names=legacy,
                         events=["file_transfer"], acting_user=None)  # fmt: skip
    local_destination(world.project, local_roots / "nas", types=("transcoded", "chat"), name="NAS")
    scheduling.schedule_deliveries_for_session(session.pk)
    [body] = received(webhook_receiver, 1)
    assert body["type"] == ("file-transfer" if legacy else "file_transfer")
    assert isinstance(body["trans_date"], int)
    assert body["destination"] == {"name": "local", "host": "", "account": "", "label": "NAS"}
    folder = local_roots / "nas" / "recordings" / session.room.room_id / session.conf_num
    by_name = {f["name"]: f for f in body["files"]}
    assert set(by_name) == {"transcoded.mp4", "chat.json"}
    video = by_name["transcoded.mp4"]
    assert video["url"] == f"file://{folder / 'transcoded.mp4'}"
    assert video["path"] == str(folder / "transcoded.mp4")
    assert (video["type"], video["size"]) == ("transcoded", 300)
    assert video["sha256"] == session.files.get(name="transcoded.mp4").sha256
    assert body["missing"] == []


@pytest.mark.parametrize(
    ("kind", "config", "final", "name", "url", "host", "account"),
    [
        ("s3", {"bucket": "rec", "region": "eu-west-1"}, "s3://rec/r/c/f.mp4", "awss3",
         "s3://rec/r/c/f.mp4", "s3.eu-west-1.amazonaws.com", "rec"),
        ("s3", {"bucket": "rec", "endpoint_url": "https://minio.example.com:9000"},
         "s3://rec/f.mp4", "awss3", "s3://rec/f.mp4", "minio.example.com:9000", "rec"),
        ("sftp", {"host": "files.example.com", "username": "rec"}, "/srv/rec/r/c/f.mp4",
         "sftp", "sftp://files.example.com/srv/rec/r/c/f.mp4", "files.example.com", "rec"),
        ("scp", {"host": "files.example.com", "username": "rec"}, "up/r/c/f.mp4",
         "ssh", "scp://files.example.com/up/r/c/f.mp4", "files.example.com", "rec"),
        ("ftp", {"host": "ftp.example.com", "username": "rec"}, "/home/rec/r/c/f.mp4",
         "ftp", "ftp://ftp.example.com/home/rec/r/c/f.mp4", "ftp.example.com", "rec"),
        ("azure", {"account_name": "acct", "container": "rec", "account_key": "a2V5"},
         "azure://acct/rec/r/c/f.mp4", "azure", "azure://acct/rec/r/c/f.mp4",
         "acct.blob.core.windows.net", "acct"),
        ("gdrive", {"folder": "Recordings", "account_email": "ops@example.com"},
         "gdrive://Recordings/r/c/f.mp4", "gdrive", "gdrive://Recordings/r/c/f.mp4",
         "drive.google.com", "ops@example.com"),
        ("local", {"path": "/mnt/rec"}, "/mnt/rec/r/c/f.mp4", "local",
         "file:///mnt/rec/r/c/f.mp4", "", ""),
    ],
)  # fmt: skip
def test_each_kind_names_itself_and_its_files_as_enablex_does(
    kind, config, final, name, url, host, account
):
    dest = destination_for(kind, config)
    assert dest.webhook_name == name
    assert dest.file_url(final) == url
    assert dest.webhook_destination() == {"host": host, "account": account}


def test_webhook_configure_takes_events_and_legacy_names(world, capsys):
    call_command("webhook", "configure", world.app_id, "--url", "https://hooks.example.com/in",
                 "--events", "file_transfer,transcoded", "--legacy-event-names")  # fmt: skip
    out = capsys.readouterr().out
    assert "WEBHOOK_EVENTS=transcoded,file_transfer" in out
    assert "WEBHOOK_LEGACY_EVENT_NAMES=yes" in out
    endpoint = WebhookEndpoint.objects.get(project=world.project)
    assert endpoint.events == ["transcoded", "file_transfer"] and endpoint.legacy_event_names
    # Options left out keep what is stored.
    call_command("webhook", "configure", world.app_id, "--disable")
    endpoint.refresh_from_db()
    assert endpoint.events == ["transcoded", "file_transfer"] and endpoint.legacy_event_names
    call_command("webhook", "configure", world.app_id, "--no-legacy-event-names", "--events",
                 ",".join(outbox.SELECTABLE_EVENT_TYPES))  # fmt: skip
    endpoint.refresh_from_db()
    assert endpoint.events == [] and not endpoint.legacy_event_names  # [] = every event
    with pytest.raises(Exception, match="events"):
        call_command("webhook", "configure", world.app_id, "--events", "roomdrop")


def test_the_webhook_page_saves_the_event_checkboxes_and_the_legacy_name(client, world):
    client.force_login(world.alice)
    page = f"/projects/{world.app_id}/settings/webhook/"
    html = client.get(page).content.decode()
    assert 'name="events"' in html and 'name="legacy_event_names"' in html
    response = client.post(page, {"url": "https://hooks.example.com/in", "enabled": "on",
                                  "events": ["recording", "file_transfer"],
                                  "legacy_event_names": "on"})  # fmt: skip
    assert response.status_code in (200, 302)
    endpoint = WebhookEndpoint.objects.get(project=world.project)
    assert endpoint.events == ["recording", "file_transfer"] and endpoint.legacy_event_names
    html = client.get(page).content.decode()
    assert html.count('name="events" value="file_transfer"') == 1
    assert 'value="transcoded"' in html and "checked" in html
