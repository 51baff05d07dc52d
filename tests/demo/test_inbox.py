"""The demo's Webhook inbox (demo/inbox.py): the portal receives its demo
project's own signed webhooks. The sender's real signing code makes the
requests; every refusal leaves nothing stored."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.test import Client

from demo import inbox
from demo.models import InboxMessage
from projects.actions.projects import do_create_project
from projects.management.commands.setup_demo import DEMO_PROJECT, DEMO_USERNAME
from projects.models import Membership, Role
from webhooks import outbox, signing
from webhooks.actions import do_configure_webhook, generate_secret
from webhooks.models import WebhookEndpoint, WebhookMessage


@pytest.fixture
def demo(world, make_user, settings):
    """`make run`'s demo project (owned by the demo user, alice a viewer
    member), its webhook pointing at the inbox, and the inbox turned on."""
    settings.DEMO_WEBHOOK_INBOX = True
    user = make_user(DEMO_USERNAME)
    project = do_create_project(DEMO_PROJECT, acting_user=user).project
    Membership.objects.create(project=project, user=world.alice, role=Role.VIEWER)
    do_configure_webhook(project, url=inbox.inbox_url(project), acting_user=None)
    return project


def signed(project, event_type="file_transfer", **extra):
    """Body and headers exactly as the portal's webhook sender makes them."""
    payload = {"type": event_type, "app_id": project.app_id, "room_id": "r1", "conf_num": "c1"}
    message = outbox.queue_event(project, event_type, {**payload, **extra})
    endpoint = WebhookEndpoint.objects.get(project=project)
    body, headers = signing.signed_request(endpoint, message)
    return body, headers


def post(client, project, body: bytes, headers: dict):
    extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
    extra.pop("HTTP_CONTENT_TYPE", None)
    return client.post(
        f"/projects/{project.app_id}/webhook-inbox/receive",
        data=body,
        content_type="application/json",
        **extra,
    )


def test_a_signed_webhook_of_the_demo_project_is_kept_and_shown_to_its_members(demo, world):
    body, headers = signed(demo, files=[{"name": "composite.mp4", "path": "/x/composite.mp4"}])
    # A webhook sender has no CSRF token: the receiving route is exempt.
    response = post(Client(enforce_csrf_checks=True), demo, body, headers)
    assert response.status_code == 204
    [kept] = InboxMessage.objects.filter(project=demo)
    assert (kept.event_type, kept.msg_id, json.loads(kept.body)["conf_num"]) == (
        "file_transfer",
        headers["webhook-id"],
        "c1",
    )
    client = Client()
    client.force_login(world.alice)
    page = client.get(f"/projects/{demo.app_id}/webhook-inbox/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "signature verified" in text
    assert "file_transfer" in text and "composite.mp4" in text
    assert headers["webhook-id"] in text


@pytest.mark.parametrize(
    "forge",
    [
        "wrong secret",
        "altered body",
        "no signature",
        "garbled signature",
        "timestamp an hour old",
    ],
)
def test_a_webhook_whose_signature_does_not_verify_is_refused_and_not_stored(demo, forge):
    body, headers = signed(demo)
    if forge == "wrong secret":
        endpoint = WebhookEndpoint.objects.get(project=demo)
        endpoint.secret = generate_secret()
        body, headers = signing.signed_request(endpoint, WebhookMessage.objects.first())
        endpoint.refresh_from_db()
    elif forge == "altered body":
        body = body.replace(b'"c1"', b'"c2"')
    elif forge == "no signature":
        del headers["webhook-signature"]
    elif forge == "garbled signature":
        headers["webhook-signature"] = "v1,not base64!! v1"
    elif forge == "timestamp an hour old":
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 3600)
    response = post(Client(), demo, body, headers)
    assert response.status_code == 400
    assert "signature" in response.content.decode()
    assert not InboxMessage.objects.exists()


def test_the_inbox_is_not_found_unless_the_demo_setting_turns_it_on(demo, world, settings):
    settings.DEMO_WEBHOOK_INBOX = False
    body, headers = signed(demo)
    assert post(Client(), demo, body, headers).status_code == 404
    client = Client()
    client.force_login(world.alice)
    assert client.get(f"/projects/{demo.app_id}/webhook-inbox/").status_code == 404
    assert not InboxMessage.objects.exists()
    # Nor is it offered on the project's pages.
    assert "Webhook inbox" not in client.get(f"/projects/{demo.app_id}/").content.decode()


def test_another_project_cannot_use_the_inbox_as_a_free_receiver(demo, world):
    """Alice's own project signs with its own secret: still 404, nothing kept,
    even with the demo setting on."""
    do_configure_webhook(world.project, url=inbox.inbox_url(world.project), acting_user=None)
    body, headers = signed(world.project)
    assert post(Client(), world.project, body, headers).status_code == 404
    # A project of the same name that the demo user does not own is no demo either.
    copycat = do_create_project(DEMO_PROJECT, acting_user=world.charlie).project
    do_configure_webhook(copycat, url=inbox.inbox_url(copycat), acting_user=None)
    body, headers = signed(copycat)
    assert post(Client(), copycat, body, headers).status_code == 404
    assert not InboxMessage.objects.exists()
    client = Client()
    client.force_login(world.alice)
    assert client.get(f"/projects/{world.app_id}/webhook-inbox/").status_code == 404
    assert "Webhook inbox" not in client.get(f"/projects/{world.app_id}/").content.decode()


def test_an_outsider_cannot_read_the_inbox(demo, world):
    body, headers = signed(demo)
    assert post(Client(), demo, body, headers).status_code == 204
    url = f"/projects/{demo.app_id}/webhook-inbox/"
    outsider = Client()
    outsider.force_login(world.charlie)
    response = outsider.get(url)
    assert response.status_code == 404
    assert headers["webhook-id"] not in response.content.decode()
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")
    member = Client()
    member.force_login(world.alice)
    assert "Webhook inbox" in member.get(f"/projects/{demo.app_id}/").content.decode()


def test_a_body_over_the_cap_is_refused_before_it_is_read(demo):
    body, headers = signed(demo, padding="x" * inbox.MAX_BODY_BYTES)
    assert len(body) > inbox.MAX_BODY_BYTES
    response = post(Client(), demo, body, headers)
    assert response.status_code == 413
    assert not InboxMessage.objects.exists()
    # Just under the cap is fine.
    room = inbox.MAX_BODY_BYTES - len(signed(demo, padding="")[0]) - 10
    body, headers = signed(demo, padding="x" * room)
    assert post(Client(), demo, body, headers).status_code == 204


def test_the_inbox_keeps_only_the_latest_messages(demo, monkeypatch):
    monkeypatch.setattr(inbox, "KEEP_MESSAGES", 3)
    ids = []
    for _ in range(5):
        body, headers = signed(demo, event_type="recording")
        assert post(Client(), demo, body, headers).status_code == 204
        ids.append(headers["webhook-id"])
    kept = list(InboxMessage.objects.values_list("msg_id", flat=True))
    assert sorted(kept) == sorted(ids[-3:])


def test_setup_demo_points_the_demo_webhook_at_the_inbox_only_when_it_is_on(db, settings):
    settings.DEMO_WEBHOOK_INBOX = False
    out = io.StringIO()
    call_command("setup_demo", stdout=out)
    assert "DEMO_WEBHOOK_URL=none" in out.getvalue()
    assert not WebhookEndpoint.objects.exists()
    settings.DEMO_WEBHOOK_INBOX = True
    out = io.StringIO()
    call_command("setup_demo", stdout=out)
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.url == f"{settings.PUBLIC_BASE_URL}/projects/{endpoint.project.app_id}/webhook-inbox/receive"
    assert f"DEMO_WEBHOOK_URL={endpoint.url}" in out.getvalue()
    # Someone's own receiver is left alone on the next run.
    do_configure_webhook(endpoint.project, url="https://hooks.example.com/in", acting_user=None)
    call_command("setup_demo", stdout=io.StringIO())
    assert WebhookEndpoint.objects.get().url == "https://hooks.example.com/in"


@pytest.mark.parametrize(
    "public, bind",
    [
        ("http://127.0.0.1:8123", "127.0.0.1:8123"),
        ("http://localhost:9000", "127.0.0.1:9000"),
        ("http://127.0.0.1", "127.0.0.1:8000"),
        ("https://portal.example.com", "127.0.0.1:8000"),
    ],
)
def test_runportal_listens_where_a_local_public_base_url_points(settings, public, bind):
    """So `PUBLIC_BASE_URL=http://127.0.0.1:8123 make run` serves the demo's
    links and its webhook (which points at PUBLIC_BASE_URL) on that port."""
    from projects.management.commands.runportal import default_bind

    settings.PUBLIC_BASE_URL = public
    assert default_bind() == bind
