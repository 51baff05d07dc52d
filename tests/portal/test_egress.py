"""The egress guard against real sockets: what it refuses, that a refused
address is never connected to, and that it connects to the address it vetted
even when the DNS answer changes between check and connect."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from django.core.exceptions import ImproperlyConfigured

from portal import egress
from tests.servers.listener import RecordingListener, listeners_on_one_port

REAL_GETADDRINFO = socket.getaddrinfo

# (host as a tenant would type it, the rule the refusal must name)
REFUSED = [
    ("127.0.0.1", "a loopback address"),
    ("127.8.9.10", "a loopback address"),
    ("localhost", "does not resolve to a public internet address"),
    ("[::1]", "a loopback address"),
    ("::1", "a loopback address"),
    ("0.0.0.0", "the unspecified address"),
    ("::", "the unspecified address"),
    ("169.254.169.254", "a link-local address"),
    ("fe80::1", "a link-local address"),
    ("10.0.0.5", "a private-network address"),
    ("172.16.3.4", "a private-network address"),
    ("192.168.1.1", "a private-network address"),
    ("fd00::5", "a private-network address"),
    ("100.64.0.1", "a carrier-grade NAT address"),
    ("224.0.0.1", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("240.0.0.1", "a reserved address"),
    ("255.255.255.255", "a reserved address"),
    ("198.18.0.1", "a private-network address"),
    ("::ffff:127.0.0.1", "an IPv4-mapped IPv6 address"),
    ("[::ffff:169.254.169.254]", "an IPv4-mapped IPv6 address"),
    ("64:ff9b::a00:5", "a NAT64 address"),
    ("2002:7f00:1::", "a 6to4 address wrapping an internal IPv4 address"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "a Teredo tunnel address"),
    ("::7f00:1", "an IPv4-compatible IPv6 address"),
    ("2130706433", "2130706433 (that is 127.0.0.1) is a loopback address"),
    ("0177.0.0.1", "0177.0.0.1 (that is 127.0.0.1) is a loopback address"),
    ("0x7f.1", "0x7f.1 (that is 127.0.0.1) is a loopback address"),
    ("0xa9fea9fe", "(that is 169.254.169.254) is a link-local address"),
]


@pytest.fixture
def no_exemptions(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []


@pytest.mark.parametrize(("host", "rule"), REFUSED)
def test_every_non_public_address_is_refused_naming_the_rule(no_exemptions, host, rule):
    with pytest.raises(egress.OutboundRefused) as refused:
        egress.check_host(host)
    assert rule in refused.value.message
    assert "only connects to public internet addresses" in refused.value.message


def test_a_name_resolving_to_loopback_is_refused_without_revealing_the_address(no_exemptions):
    with pytest.raises(egress.OutboundRefused) as refused:
        egress.check_host("localhost")
    assert refused.value.message.startswith("localhost does not resolve to a public internet address")
    assert "127.0.0.1" not in refused.value.message and "::1" not in refused.value.message


def test_names_resolving_to_any_internal_address_get_one_answer(no_exemptions, monkeypatch):
    """A tenant probing names learns nothing of what kind of internal host a name
    is (loopback, private, the metadata service's link-local address)."""
    answers = {"loop.test": "127.0.0.1", "db.test": "10.1.2.3", "metadata.test": "169.254.169.254"}

    def resolver(host, port, family=0, type=0, proto=0, flags=0):
        return REAL_GETADDRINFO(answers[host], port, family, type, proto, flags)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    messages = set()
    for name in answers:
        with pytest.raises(egress.OutboundRefused) as refused:
            egress.check_host(name)
        messages.add(refused.value.message.replace(name, "NAME"))
    assert messages == {f"NAME does not resolve to a public internet address: {egress.RULE}."}


@pytest.mark.parametrize(
    "host", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "2002:808:808::1", "[2606:4700::1111]"]
)
def test_public_addresses_pass(no_exemptions, host):
    egress.check_host(host)


def test_a_name_that_does_not_resolve_can_be_saved_and_is_checked_at_connect(no_exemptions):
    egress.check_host("no-such-host.invalid")
    with pytest.raises(socket.gaierror):
        egress.connect("no-such-host.invalid", 80, 2)


def test_allowed_networks_exempt_exactly_what_they_list(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8", "10.1.0.0/16"]
    for host in ("127.0.0.1", "localhost", "10.1.2.3", "2130706433"):
        egress.check_host(host)
    for host in ("10.2.0.1", "169.254.169.254", "::1", "192.168.0.1"):
        with pytest.raises(egress.OutboundRefused):
            egress.check_host(host)


def test_the_allowlist_may_be_a_comma_separated_string(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = "10.9.0.0/16, 127.0.0.1/32"
    egress.check_host("10.9.1.1")
    egress.check_host("127.0.0.1")
    with pytest.raises(egress.OutboundRefused):
        egress.check_host("127.0.0.2")


def test_a_malformed_allowlist_is_a_clear_configuration_error(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8", "intranet"]
    with pytest.raises(ImproperlyConfigured, match="'intranet' is not a network"):
        egress.check_host("8.8.8.8")


@pytest.mark.parametrize(
    "spelling", ["127.0.0.1", "localhost", "2130706433", "0x7f.1", "0177.0.0.1"]
)
def test_no_connection_is_ever_made_to_a_refused_address(no_exemptions, spelling):
    with RecordingListener("127.0.0.1") as listener:
        with pytest.raises(egress.OutboundRefused):
            egress.connect(spelling, listener.port, 5)
        time.sleep(0.3)
        assert listener.accepted == []


def test_an_allowed_address_is_connected_to(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    with RecordingListener("127.0.0.1") as listener:
        with egress.connect("localhost", listener.port, 5) as sock:
            assert sock.getpeername()[0] in ("127.0.0.1", "::1")
            sock.sendall(b"hello")
        deadline = time.monotonic() + 5
        while not listener.accepted and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(listener.accepted) == 1


class RebindingResolver:
    """An attacker's DNS: ``name`` answers ``first`` once, then ``then``."""

    def __init__(self, name: str, first: str, then: str):
        self.name, self.first, self.then = name, first, then
        self.calls = 0

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002
        if host != self.name:
            return REAL_GETADDRINFO(host, port, family, type, proto, flags)
        self.calls += 1
        address = self.first if self.calls == 1 else self.then
        return REAL_GETADDRINFO(address, port, family, type, proto, flags)


@pytest.fixture
def rebinding(settings, monkeypatch):
    """rebind.test: first 127.0.0.2 (allowed here), then 127.0.0.1 (refused),
    with a recording listener on both, on one port."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    resolver = RebindingResolver("rebind.test", "127.0.0.2", "127.0.0.1")
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    vetted, internal = listeners_on_one_port("127.0.0.2", "127.0.0.1")
    yield resolver, vetted, internal
    vetted.close()
    internal.close()


def test_connect_uses_the_address_it_vetted_when_dns_changes_its_answer(rebinding):
    resolver, vetted, internal = rebinding
    with egress.connect("rebind.test", vetted.port, 5) as sock:
        assert sock.getpeername()[0] == "127.0.0.2"
    assert resolver.calls == 1  # resolved once: the check and the connect share the answer
    with pytest.raises(egress.OutboundRefused, match="rebind.test does not resolve to a public internet address"):
        egress.connect("rebind.test", vetted.port, 5)
    time.sleep(0.3)
    assert internal.accepted == []
    assert len(vetted.accepted) == 1


def test_refused_answers_of_a_name_are_dropped_and_never_connected_to(settings, monkeypatch):
    """mixed.test answers 127.0.0.1 (refused here) and 127.0.0.2 (allowed):
    the connection goes to 127.0.0.2 only."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.2/32"]

    def resolver(host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002
        if host != "mixed.test":
            return REAL_GETADDRINFO(host, port, family, type, proto, flags)
        return [
            *REAL_GETADDRINFO("127.0.0.1", port, family, type, proto, flags),
            *REAL_GETADDRINFO("127.0.0.2", port, family, type, proto, flags),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    internal, allowed = listeners_on_one_port("127.0.0.1", "127.0.0.2")
    try:
        with egress.connect("mixed.test", internal.port, 5) as sock:
            assert sock.getpeername()[0] == "127.0.0.2"
        egress.check_host("mixed.test")
        time.sleep(0.3)
        assert internal.accepted == []
    finally:
        internal.close()
        allowed.close()


def test_a_deadline_cuts_a_peer_that_trickles_its_answer(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    answer = b"HTTP/1.1 200 OK\r\n" * 10
    # Margins for a loaded machine: the whole answer would take ~50 s.
    with RecordingListener("127.0.0.1", answer=answer, trickle_delay=0.3) as listener:
        started = time.monotonic()
        received = b""
        with egress.deadline(3.0) as limit:
            with egress.connect("127.0.0.1", listener.port, 10) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
                try:
                    while chunk := sock.recv(100):  # every byte arrives well within 10 s
                        received += chunk
                except ConnectionResetError:
                    # The cut may surface as a reset (the peer wrote after our
                    # shutdown); the webhook sender reads it as the deadline too.
                    assert limit.expired
        elapsed = time.monotonic() - started
    assert limit.expired
    assert 2.5 < elapsed < 12, elapsed
    assert 0 < len(received) < len(answer)


def test_a_malformed_allowlist_stops_the_portal_at_start_with_a_clear_message(settings):
    env = {**os.environ, "PORTAL_TESTING": "1", "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8,intranet"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "OUTBOUND_ALLOWED_NETWORKS: 'intranet' is not a network such as 127.0.0.0/8" in (
        result.stderr
    )


def test_the_real_portal_without_the_allowlist_refuses_and_never_connects():
    """The portal's own processes (settings from the environment, the CLI):
    saving an internal URL exits non-zero naming the rule, and a webhook put
    in the database by other means is never sent to it."""
    from tests.servers.portal import PortalProcesses

    portal = PortalProcesses(extra_env={"OUTBOUND_ALLOWED_NETWORKS": ""})
    try:
        portal.setup()
        app_id = portal.create_project()["APP_ID"]
        with RecordingListener("127.0.0.1") as listener:
            url = f"http://localhost:{listener.port}/hooks"
            saved = portal.manage("webhook", "configure", app_id, "--url", url, check=False)
            assert saved.returncode != 0
            assert "localhost does not resolve to a public internet address" in saved.stderr
            portal.manage("shell", "-c", (
                "from projects.models import Project;"
                "from webhooks.actions import do_configure_webhook;"
                f"do_configure_webhook(Project.objects.get(app_id={app_id!r}), url={url!r}, acting_user=None)"
            ))  # fmt: skip
            sent = portal.manage("webhook", "test", app_id, check=False)
            assert sent.returncode != 0
            assert "STATUS=0" in sent.stdout
            assert "localhost does not resolve to a public internet address" in sent.stderr
            time.sleep(0.3)
            assert listener.accepted == []
    finally:
        portal.stop()
