"""Webhook sending against a real HTTP receiver on loopback: signatures,
Basic auth, errors in the portal's own words, the egress guard and the
attempt's deadline."""

from __future__ import annotations

import logging
import socket
import time
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone
from standardwebhooks import WebhookVerificationError

from tests.portal.test_egress import RebindingResolver
from tests.servers.listener import RecordingListener, listeners_on_one_port
from webhooks import outbox, sending, tasks
from webhooks.actions import do_configure_webhook, do_rotate_webhook_secret
from webhooks.models import WebhookEndpoint, WebhookMessage

from .support import State, event

BASIC_PASSWORD = "hunter2-basic-pass"


def test_the_signature_verifies_with_the_secret_at_the_receiver(
    world, hook, webhook_receiver, sync_queue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        message = event(world, files=[{"url": "https://x/y.mp4"}])
    [request] = webhook_receiver.wait_for(1)
    body = webhook_receiver.verify(hook.new_secret, request)
    assert body == message.payload
    assert request.headers["webhook-id"] == message.msg_id
    assert request.headers["content-type"] == "application/json"
    message.refresh_from_db()
    assert message.state == State.DELIVERED
    [logged] = message.attempt_log.all()
    assert logged.status_code == 204 and logged.error == ""


def test_a_signature_made_with_another_secret_does_not_verify(world, hook, webhook_receiver):
    message = event(world)
    sending.attempt(message.pk)
    [request] = webhook_receiver.wait_for(1)
    with pytest.raises(WebhookVerificationError):
        webhook_receiver.verify("whsec_" + "QUJD" * 8, request)


def test_it_sends_basic_auth_when_configured(world, webhook_receiver):
    do_configure_webhook(
        world.project,
        url=webhook_receiver.url,
        basic_username="enx",
        basic_password=BASIC_PASSWORD,
        acting_user=None,
    )
    webhook_receiver.require_basic("enx", BASIC_PASSWORD)
    logged = sending.attempt(event(world).pk)
    assert logged.status_code == 204
    assert webhook_receiver.requests[0].basic_auth == ("enx", BASIC_PASSWORD)


def test_a_wrong_basic_password_is_reported_as_such(world, webhook_receiver):
    do_configure_webhook(
        world.project,
        url=webhook_receiver.url,
        basic_username="enx",
        basic_password="wrong-one",
        acting_user=None,
    )
    webhook_receiver.require_basic("enx", BASIC_PASSWORD)
    logged = sending.attempt(event(world).pk)
    assert logged.status_code == 401
    assert "Basic username and password" in logged.error


def test_no_basic_auth_is_sent_without_a_username(world, hook, webhook_receiver):
    sending.attempt(event(world).pk)
    assert "authorization" not in webhook_receiver.wait_for(1)[0].headers


def test_a_500_then_success_logs_two_attempts_and_delivers(world, hook, webhook_receiver):
    webhook_receiver.fail_next(1, status=500)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        message = event(world)
        tasks.send_message_task(message.pk)
    message.refresh_from_db()
    assert message.state == State.RETRY
    assert message.next_attempt_at == start + timedelta(seconds=30)
    with time_machine.travel(start + timedelta(seconds=29), tick=False):
        assert tasks.sweep_due_messages() == 0
    with time_machine.travel(start + timedelta(seconds=31), tick=False):
        assert tasks.sweep_due_messages() == 1
    message.refresh_from_db()
    assert message.state == State.DELIVERED and message.attempts == 2
    assert [a.status_code for a in message.attempt_log.order_by("at")] == [500, 204]
    assert "HTTP 500" in message.attempt_log.order_by("at")[0].error
    ids = {r.headers["webhook-id"] for r in webhook_receiver.requests}
    assert ids == {message.msg_id}


def test_a_slow_receiver_times_out_and_is_retried(world, hook, webhook_receiver, monkeypatch):
    monkeypatch.setattr(sending, "READ_TIMEOUT", 0.3)
    webhook_receiver.fail_next(1, status=200, delay=3)
    logged = sending.attempt(event(world).pk)
    assert logged.status_code is None
    assert "did not answer within 0.3 s" in logged.error
    assert logged.message.state == State.RETRY


def test_an_unreachable_receiver_is_named_without_its_path(world, webhook_receiver):
    port = webhook_receiver.url.split(":")[2].split("/")[0]
    webhook_receiver.close()
    do_configure_webhook(
        world.project, url=f"http://127.0.0.1:{port}/hooks?token=tok-123", acting_user=None
    )
    logged = sending.attempt(event(world).pk)
    assert logged.error == f"Could not connect to 127.0.0.1:{port}; is the receiver running?"


def test_a_resend_keeps_the_webhook_id(world, hook, webhook_receiver):
    message = event(world)
    sending.attempt(message.pk)
    resent = sending.resend(message)
    assert resent.ok and resent.manual
    first, second = webhook_receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == message.msg_id
    assert webhook_receiver.verify(hook.new_secret, second)["type"] == "recording"


def test_a_failed_message_can_be_resent_by_hand(world, hook, webhook_receiver):
    message = event(world)
    WebhookMessage.objects.filter(pk=message.pk).update(state=State.FAILED, next_attempt_at=None)
    assert sending.resend(message).ok
    message.refresh_from_db()
    assert message.state == State.DELIVERED


def test_a_test_event_has_null_room_and_is_not_retried(world, hook, webhook_receiver):
    webhook_receiver.fail_next(1)
    logged = sending.send_test_event(world.project)
    body = webhook_receiver.wait_for(1)[0].json()
    assert body["type"] == "test" and body["room_id"] is None and body["conf_num"] is None
    assert body["app_id"] == world.app_id
    assert isinstance(body["trans_date"], int)  # every body has it, in Unix seconds
    assert logged.message.state == State.FAILED


def test_a_rotated_secret_signs_the_next_message(world, hook, webhook_receiver):
    secret = do_rotate_webhook_secret(world.project, acting_user=None)
    assert secret != hook.new_secret and secret.startswith("whsec_")
    sending.attempt(event(world).pk)
    assert webhook_receiver.verify(secret, webhook_receiver.wait_for(1)[0])


def test_secrets_never_reach_the_log_or_the_database_in_plain(world, webhook_receiver, caplog):
    caplog.set_level(logging.DEBUG)
    change = do_configure_webhook(
        world.project,
        url=webhook_receiver.url,
        basic_username="enx",
        basic_password=BASIC_PASSWORD,
        acting_user=None,
    )
    webhook_receiver.fail_next(1, status=500)
    message = event(world)
    sending.attempt(message.pk)
    sending.resend(message)
    assert "webhook" in caplog.text
    for secret in (change.new_secret, change.new_secret[6:], BASIC_PASSWORD):
        assert secret not in caplog.text
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret, basic_password FROM projects_webhookendpoint")
        stored = " ".join(cursor.fetchone())
        cursor.execute("SELECT detail FROM projects_auditevent")
        audit = " ".join(str(row[0]) for row in cursor.fetchall())
    for secret in (change.new_secret, change.new_secret[6:], BASIC_PASSWORD):
        assert secret not in stored and secret not in audit
    assert WebhookEndpoint.objects.get().basic_password == BASIC_PASSWORD


# --- the egress guard, deadline and no oracle ------------------------------------


def test_a_webhook_to_loopback_is_refused_without_the_allowlist_and_never_retried(
    world, hook, webhook_receiver, settings
):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    message = event(world)
    logged = sending.attempt(message.pk)
    message.refresh_from_db()
    assert logged.status_code is None
    assert logged.error.startswith("127.0.0.1 is a loopback address")
    assert "only connects to public internet addresses" in logged.error
    assert message.state == State.FAILED and message.next_attempt_at is None
    assert webhook_receiver.requests == []


def test_a_webhook_name_resolving_to_loopback_is_refused_and_never_connected(world, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    with RecordingListener("127.0.0.1") as listener:
        do_configure_webhook(
            world.project, url=f"http://localhost:{listener.port}/hooks", acting_user=None
        )
        logged = sending.attempt(event(world).pk)
        time.sleep(0.3)
        assert listener.accepted == []
    assert logged.error.startswith("localhost does not resolve to a public internet address")


def test_a_webhook_connects_to_the_address_it_vetted_when_dns_changes(world, settings, monkeypatch):
    """rebind.test answers 127.0.0.2 (allowed here) once, then 127.0.0.1 (an
    internal service): the one attempt goes to 127.0.0.2, never to 127.0.0.1."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    answer = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    vetted, internal = listeners_on_one_port("127.0.0.2", "127.0.0.1", answer=answer)
    try:
        do_configure_webhook(
            world.project, url=f"http://rebind.test:{vetted.port}/hooks", acting_user=None
        )
        monkeypatch.setattr(
            socket, "getaddrinfo", RebindingResolver("rebind.test", "127.0.0.2", "127.0.0.1")
        )
        logged = sending.attempt(event(world).pk)
        time.sleep(0.3)
        assert logged.status_code == 204, logged.error
        assert len(vetted.accepted) == 1 and internal.accepted == []
    finally:
        vetted.close()
        internal.close()


def test_a_trickling_receiver_cannot_hold_an_attempt_past_its_deadline(world, monkeypatch):
    monkeypatch.setattr(sending, "ATTEMPT_DEADLINE", 3.0)
    # One byte a second: the 10 s read timeout never fires against it.
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    with RecordingListener("127.0.0.1", answer=answer, trickle_delay=1.0) as listener:
        do_configure_webhook(
            world.project, url=f"http://127.0.0.1:{listener.port}/hooks", acting_user=None
        )
        message = event(world)
        started = time.monotonic()
        logged = sending.attempt(message.pk)
        elapsed = time.monotonic() - started
    assert elapsed < 8, elapsed
    assert logged.status_code is None
    assert logged.error == f"127.0.0.1:{listener.port} did not complete its answer within 3 s"
    message.refresh_from_db()
    assert message.state == State.RETRY
    # The attempt ended inside its lease: nobody else may send it until the retry is due.
    assert outbox.claim(message.pk) is None
    assert len(listener.accepted) == 1


def test_the_lease_outlasts_the_longest_attempt():
    assert outbox.LEASE.total_seconds() >= 2 * sending.ATTEMPT_DEADLINE
    assert sending.ATTEMPT_DEADLINE >= sending.CONNECT_TIMEOUT


def test_redirects_are_never_followed(world, webhook_receiver):
    location = webhook_receiver.url
    answer = f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode()
    with RecordingListener("127.0.0.1", answer=answer) as redirector:
        do_configure_webhook(
            world.project, url=f"http://127.0.0.1:{redirector.port}/hooks", acting_user=None
        )
        logged = sending.attempt(event(world).pk)
    assert logged.status_code == 302
    assert "redirects are not followed" in logged.error
    assert webhook_receiver.requests == []


def test_nothing_of_the_receivers_answer_is_kept(world):
    body = b"+OK internal-cache v7.2.4 role=master"
    answer = (
        b"HTTP/1.1 500 Internal Server Error\r\nX-Server: internal-cache\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    with RecordingListener("127.0.0.1", answer=answer) as listener:
        do_configure_webhook(
            world.project, url=f"http://127.0.0.1:{listener.port}/hooks", acting_user=None
        )
        logged = sending.attempt(event(world).pk)
    assert logged.status_code == 500
    assert logged.error == f"127.0.0.1:{listener.port} answered HTTP 500; a 2xx status is needed"
    assert not hasattr(logged, "response_excerpt")
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM projects_webhookattempt")
        assert "internal-cache" not in repr(cursor.fetchall())
