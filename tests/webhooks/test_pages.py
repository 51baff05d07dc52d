"""Settings → Webhook page and the `webhook` management command."""

from __future__ import annotations

import re
from html import unescape as html_unescape

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from projects.models import AuditEvent, Role
from tests.portal.test_egress import REFUSED
from tests.servers import webhook_receiver as receivers
from tests.servers.listener import RecordingListener
from webhooks.actions import do_configure_webhook
from webhooks.models import WebhookEndpoint, WebhookMessage

webhook_receiver = receivers.webhook_receiver

BASIC_PASSWORD = "s3cret-basic-password"
SECRET_RE = re.compile(r"whsec_[A-Za-z0-9+/=]{40,}")


def page(world):
    return reverse("projects:webhook", args=[world.app_id])


def save(client, world, **fields):
    data = {"url": "https://hooks.example.com/in", "enabled": "on", **fields}
    return client.post(page(world), {k: v for k, v in data.items() if v is not None})


def test_viewers_get_403_on_the_page(client, world):
    client.force_login(world.bob)
    assert client.get(page(world)).status_code == 403


def test_staff_get_403_on_the_actions(client, world, member):
    member(Role.STAFF, client)
    do_configure_webhook(world.project, url="https://hooks.example.com/in", acting_user=None)
    message = WebhookMessage.objects.create(
        project=world.project, event_type="test", payload={"type": "test"}
    )
    resend = reverse("projects:webhook_resend", args=[world.app_id, message.msg_id])
    assert client.post(resend).status_code == 403


def test_a_bad_url_is_reported_next_to_the_field(client, world):
    client.force_login(world.alice)
    response = save(client, world, url="ftp://files.example.com/x")
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_url_error"' in html
    assert html.count("Enter a full http:// or https:// URL") == 1
    assert not WebhookEndpoint.objects.exists()


def test_credentials_in_the_url_are_refused(client, world):
    client.force_login(world.alice)
    response = save(client, world, url="https://u:p@hooks.example.com/in")
    assert "Put credentials in the Basic auth fields" in response.content.decode()


def test_the_secret_is_shown_once_on_first_save(client, world):
    client.force_login(world.alice)
    response = save(client, world)
    assert response.status_code == 200
    [secret] = set(SECRET_RE.findall(response.content.decode()))
    assert WebhookEndpoint.objects.get().secret == secret
    assert secret not in client.get(page(world)).content.decode()
    again = save(client, world, url="https://hooks.example.com/other")
    assert again.status_code == 302
    assert secret not in client.get(page(world)).content.decode()
    assert WebhookEndpoint.objects.get().url == "https://hooks.example.com/other"


def test_rotating_the_secret_shows_the_new_one_once(client, world):
    client.force_login(world.alice)
    old = do_configure_webhook(
        world.project, url="https://hooks.example.com/in", acting_user=None
    ).new_secret
    response = client.post(reverse("projects:webhook_rotate_secret", args=[world.app_id]))
    [new] = set(SECRET_RE.findall(response.content.decode()))
    assert new != old and WebhookEndpoint.objects.get().secret == new
    assert new not in client.get(page(world)).content.decode()
    rotated = AuditEvent.objects.filter(action=AuditEvent.Action.WEBHOOK_CHANGED).first()
    assert rotated.detail == {"changed": ["secret_rotated"]}


def test_the_basic_password_is_write_only(client, world):
    client.force_login(world.alice)
    save(client, world, basic_username="enx", basic_password=BASIC_PASSWORD)
    html = client.get(page(world)).content.decode()
    assert BASIC_PASSWORD not in html
    assert "A password is stored" in html
    save(client, world, basic_username="enx", basic_password="")
    assert WebhookEndpoint.objects.get().basic_password == BASIC_PASSWORD
    refused = save(client, world, basic_username="enx", clear_basic_password="on")
    assert "Give the password for this Basic auth username" in refused.content.decode()
    assert WebhookEndpoint.objects.get().basic_password == BASIC_PASSWORD


def test_clearing_the_basic_credentials_removes_the_password(client, world):
    client.force_login(world.alice)
    save(client, world, basic_username="enx", basic_password=BASIC_PASSWORD)
    save(client, world, basic_username="", clear_basic_password="on")
    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.basic_username, endpoint.basic_password) == ("", "")


def test_changes_are_audited_without_secret_values(client, world):
    client.force_login(world.alice)
    response = save(client, world, basic_username="enx", basic_password=BASIC_PASSWORD)
    [secret] = set(SECRET_RE.findall(response.content.decode()))
    event = AuditEvent.objects.filter(action=AuditEvent.Action.WEBHOOK_CHANGED).get()
    assert event.actor == world.alice
    assert "basic_password_set" in event.detail["changed"]
    assert secret not in str(event.detail) and BASIC_PASSWORD not in str(event.detail)


def test_send_test_event_and_resend_from_the_page(client, world, webhook_receiver):
    client.force_login(world.alice)
    response = save(client, world, url=webhook_receiver.url)
    [secret] = set(SECRET_RE.findall(response.content.decode()))
    test_url = reverse("projects:webhook_send_test", args=[world.app_id])
    shown = client.post(test_url, follow=True).content.decode()
    assert "Test event delivered: HTTP 204" in shown
    message = WebhookMessage.objects.get()
    assert message.msg_id in shown and "HTTP 204" in shown
    webhook_receiver.fail_next(1, status=502)
    resend = reverse("projects:webhook_resend", args=[world.app_id, message.msg_id])
    shown = client.post(resend, follow=True).content.decode()
    assert "HTTP 502" in shown and "manual" in shown
    first, second = webhook_receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == message.msg_id
    assert webhook_receiver.verify(secret, second)["type"] == "test"
    assert secret not in shown


def test_sending_a_test_event_and_resending_are_audited(client, world, webhook_receiver):
    client.force_login(world.alice)
    save(client, world, url=webhook_receiver.url)
    client.post(reverse("projects:webhook_send_test", args=[world.app_id]))
    message = WebhookMessage.objects.get()
    client.post(reverse("projects:webhook_resend", args=[world.app_id, message.msg_id]))
    sent = AuditEvent.objects.filter(action=AuditEvent.Action.WEBHOOK_SENT).order_by("id")
    assert [(e.actor, e.detail["event"]) for e in sent] == [(world.alice, "test")] * 2
    assert sent.last().detail == {"event": "test", "msg_id": message.msg_id, "resend": True}
    assert sent.first().ip_address == "127.0.0.1"


def test_the_command_configures_and_prints_the_secret_once(world, tmp_path, capsys):
    password_file = tmp_path / "pw"
    password_file.write_text(BASIC_PASSWORD + "\n")
    call_command(
        "webhook", "configure", world.app_id, "--url", "https://hooks.example.com/in",
        "--basic-user", "enx", "--basic-password-file", str(password_file),
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "WEBHOOK_URL=https://hooks.example.com/in" in out
    secret = re.search(r"^WEBHOOK_SECRET=(\S+)$", out, re.M).group(1)
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret == secret and endpoint.basic_password == BASIC_PASSWORD
    assert BASIC_PASSWORD not in out
    call_command("webhook", "configure", world.app_id, "--url", "https://hooks.example.com/2")
    assert "WEBHOOK_SECRET=" not in capsys.readouterr().out
    call_command("webhook", "configure", world.app_id, "--rotate-secret")
    assert re.search(r"^WEBHOOK_SECRET=whsec_", capsys.readouterr().out, re.M)
    assert WebhookEndpoint.objects.get().basic_password == BASIC_PASSWORD


def test_the_command_refuses_a_bad_url(world):
    with pytest.raises(CommandError, match="url: Enter a full http"):
        call_command("webhook", "configure", world.app_id, "--url", "gopher://x")


def test_the_test_command_prints_the_status(world, webhook_receiver, capsys):
    do_configure_webhook(world.project, url=webhook_receiver.url, acting_user=None)
    call_command("webhook", "test", world.app_id)
    assert "STATUS=204" in capsys.readouterr().out
    webhook_receiver.fail_next(1, status=500)
    with pytest.raises(CommandError, match="HTTP 500"):
        call_command("webhook", "test", world.app_id)
    assert "STATUS=500" in capsys.readouterr().out


# --- the egress guard ---------------------------------------------------------------


def hook_url(host: str) -> str:
    bracketed = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{bracketed}:8080/in"


@pytest.mark.parametrize(("host", "rule"), REFUSED)
def test_the_form_refuses_every_internal_address_naming_the_rule(
    client, world, settings, host, rule
):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    client.force_login(world.alice)
    response = save(client, world, url=hook_url(host))
    assert response.status_code == 400
    html = html_unescape(response.content.decode())
    assert rule in html and "only connects to public internet addresses" in html
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(("host", "rule"), REFUSED)
def test_webhook_configure_exits_non_zero_naming_the_rule(
    world, settings, capsys, run_manage_py, host, rule
):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    argv = ["manage.py", "webhook", "configure", world.app_id, "--url", hook_url(host)]
    with pytest.raises(SystemExit) as exited:
        run_manage_py(*argv[1:])
    assert exited.value.code not in (0, None)
    err = capsys.readouterr().err
    assert "Webhook not saved" in err and "only connects to public internet addresses" in err
    assert rule in err
    assert not WebhookEndpoint.objects.exists()


def test_send_test_event_shows_the_status_never_the_receivers_answer(client, world):
    body = b"+OK internal-cache v7.2.4 role=master"
    answer = b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    with RecordingListener("127.0.0.1", answer=answer) as listener:
        do_configure_webhook(
            world.project, url=f"http://127.0.0.1:{listener.port}/in", acting_user=None
        )
        client.force_login(world.alice)
        response = client.post(
            reverse("projects:webhook_send_test", args=[world.app_id]), follow=True
        )
    html = response.content.decode()
    assert f"Test event failed: 127.0.0.1:{listener.port} answered HTTP 500" in html
    for word in ("internal-cache", "v7.2.4", "role=master", "Oops"):
        assert word not in html


def test_a_webhook_refused_since_it_was_saved_can_still_be_switched_off(client, world, settings):
    url = "http://127.0.0.1:9/in"
    do_configure_webhook(world.project, url=url, acting_user=None)
    settings.OUTBOUND_ALLOWED_NETWORKS = []  # the operator narrowed the exemptions
    client.force_login(world.alice)
    response = save(client, world, url=url, enabled=None)
    assert response.status_code == 302
    assert WebhookEndpoint.objects.get().enabled is False
    response = save(client, world, url="http://127.0.0.1:10/in")
    assert response.status_code == 400
    assert "127.0.0.1 is a loopback address" in response.content.decode()
