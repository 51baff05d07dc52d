"""The Deliveries page, its progress endpoint and its actions."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from delivery.forms import kind_form
from delivery.models import DeliveredFile, Delivery, DeliveryDestination
from projects.models import Role
from recordings.models import Session
from tests.factories import make_recording, save_destination
from webhooks.models import WebhookMessage


def page(world) -> str:
    return reverse("delivery:deliveries", args=[world.app_id])


def progress(world) -> str:
    return reverse("delivery:progress", args=[world.app_id])


# Local folder destinations under the test's tmp folder (DELIVERY_LOCAL_ROOTS).
pytestmark = pytest.mark.usefixtures("local_roots")


@pytest.fixture
def destination(world, tmp_path) -> DeliveryDestination:
    form = kind_form("local", {"path": str(tmp_path)}, web=False)
    assert form.is_valid()
    return save_destination(world.project, "local", form, "nas", ["individual"], True)


def make_delivery(world, destination, state, **fields) -> Delivery:
    recording = make_recording(world.project, content=b"x" * 4000)
    Session.objects.filter(pk=recording.session_id).update(state=Session.State.READY)
    fields.setdefault("bytes_total", recording.size)
    delivery = Delivery.objects.create(
        session=recording.session, destination=destination, state=state, **fields
    )
    DeliveredFile.objects.create(delivery=delivery, recording_file=recording)
    return delivery


def test_outsiders_get_404_and_viewers_see_the_page_without_actions(client, world, destination):
    make_delivery(world, destination, Delivery.State.FAILED, last_error="disk full")
    client.force_login(world.charlie)
    assert client.get(page(world)).status_code == 404
    assert client.get(progress(world)).status_code == 404
    client.force_login(world.bob)
    html = client.get(page(world)).content.decode()
    assert "disk full" in html
    assert "Redeliver" not in html and "Retry all failed" not in html
    assert "Deliver past sessions" not in html


@pytest.mark.parametrize("role", [Role.VIEWER, Role.STAFF])
def test_members_below_admin_cannot_use_the_actions(client, world, member, destination, role):
    delivery = make_delivery(world, destination, Delivery.State.FAILED)
    member(role, client)
    url = reverse("delivery:redeliver", args=[world.app_id, delivery.pk])
    assert client.post(url).status_code == 403
    assert client.post(reverse("delivery:retry_failed", args=[world.app_id])).status_code == 403
    assert Delivery.objects.get(pk=delivery.pk).state == Delivery.State.FAILED


def test_the_page_shows_state_files_bytes_speed_attempts_error_and_next_attempt(
    client, world, destination
):
    now = timezone.now()
    running = make_delivery(
        world, destination, Delivery.State.RUNNING, bytes_sent=1000, attempts=1,
        started_at=now - timedelta(seconds=2), speed=500_000.0,
    )  # fmt: skip
    waiting = make_delivery(
        world, destination, Delivery.State.RETRY_WAIT, attempts=2,
        last_error="Cannot connect to ftp.example.com:21", next_attempt_at=now + timedelta(minutes=5),
    )  # fmt: skip
    client.force_login(world.alice)
    html = client.get(page(world)).content.decode()
    assert running.session.conf_num in html and waiting.session.conf_num in html
    assert '<progress max="100" value="25"' in html
    assert "0/1 files verified" in html and "1.0 KB / 4.0 KB" in html and "500.0 KB/s" in html
    assert "Cannot connect to ftp.example.com:21" in html
    assert "waiting to retry at" in html
    assert "style=" not in html and "<script>" not in html
    assert 'src="/static/portal/delivery.js"' in html


def test_the_progress_endpoint_reports_live_figures_as_json(client, world, destination):
    delivery = make_delivery(world, destination, Delivery.State.RUNNING, bytes_sent=2000)
    client.force_login(world.bob)
    body = client.get(progress(world), {"ids": str(delivery.pk)}).json()
    [item] = body["deliveries"]
    assert item["id"] == delivery.pk and item["percent"] == 50 and body["active"] is True
    assert item["state_label"] == "Running" and item["files_total"] == 1
    assert body["summary"] == "1 delivery · 1 in progress or waiting · 0 failed."

    Delivery.objects.filter(pk=delivery.pk).update(state=Delivery.State.DELIVERED, bytes_sent=4000)
    DeliveredFile.objects.filter(delivery=delivery).update(state=DeliveredFile.State.VERIFIED)
    body = client.get(progress(world), {"ids": str(delivery.pk)}).json()
    assert body["deliveries"][0]["percent"] == 100 and body["active"] is False
    assert body["deliveries"][0]["files_verified"] == 1
    assert body["summary"] == "1 delivery · 0 in progress or waiting · 0 failed."


def test_the_progress_endpoint_only_shows_this_projects_deliveries(
    client, world, destination, tmp_path
):
    from projects.actions.projects import do_create_project

    other = do_create_project("Other", acting_user=world.alice).project
    form = kind_form("local", {"path": str(tmp_path / "other")}, web=False)
    assert form.is_valid()
    theirs = save_destination(other, "local", form, "x", ["individual"], True)
    recording = make_recording(other)
    foreign = Delivery.objects.create(session=recording.session, destination=theirs)
    client.force_login(world.bob)
    body = client.get(progress(world), {"ids": str(foreign.pk)}).json()
    assert body["deliveries"] == []


def test_redeliver_requeues_one_delivery(client, world, destination):
    delivery = make_delivery(world, destination, Delivery.State.DELIVERED, bytes_sent=4000)
    client.force_login(world.alice)
    response = client.post(
        reverse("delivery:redeliver", args=[world.app_id, delivery.pk]), follow=True
    )
    assert "queued again" in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.QUEUED and delivery.bytes_sent == 0


def test_retry_all_failed(client, world, destination):
    failed = [make_delivery(world, destination, Delivery.State.FAILED) for _ in range(2)]
    done = make_delivery(world, destination, Delivery.State.DELIVERED)
    client.force_login(world.alice)
    response = client.post(reverse("delivery:retry_failed", args=[world.app_id]), follow=True)
    assert "2 failed deliveries queued again" in response.content.decode()
    assert {d.state for d in Delivery.objects.filter(pk__in=[f.pk for f in failed])} == {"queued"}
    assert Delivery.objects.get(pk=done.pk).state == Delivery.State.DELIVERED


def test_deliver_past_sessions_for_a_date_range_and_destination(client, world, destination):
    recording = make_recording(world.project)
    Session.objects.filter(pk=recording.session_id).update(state=Session.State.READY)
    today = timezone.now().date()
    client.force_login(world.alice)
    url = reverse("delivery:past_sessions", args=[world.app_id])
    data = {"since": str(today - timedelta(days=1)), "until": str(today)}
    response = client.post(url, {**data, "destination": destination.pk}, follow=True)
    assert "1 delivery of past sessions queued" in response.content.decode()
    assert Delivery.objects.get().session_id == recording.session_id


def test_deliver_past_sessions_reports_a_bad_range(client, world, destination):
    client.force_login(world.alice)
    url = reverse("delivery:past_sessions", args=[world.app_id])
    response = client.post(url, {"since": "2024-05-02", "until": "2024-05-01"}, follow=True)
    assert "The end date is before the start date" in response.content.decode()
    assert not Delivery.objects.exists()


def test_the_webhooks_of_a_delivery_are_listed(client, world, destination):
    delivery = make_delivery(world, destination, Delivery.State.DELIVERED)
    WebhookMessage.objects.create(
        project=world.project,
        event_type="file_transfer",
        payload={"type": "file_transfer"},
        dedupe_key=f"delivery:{delivery.pk}:file_transfer",
    )
    client.force_login(world.bob)
    html = client.get(page(world)).content.decode()
    assert re.search(r"Webhook <strong>file_transfer</strong>", html)
