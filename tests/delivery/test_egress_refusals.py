"""The egress guard under every destination kind: forms and ``manage.py
delivery configure`` refuse internal hosts, connections to them are never
made (a recording listener stands where the internal service would be), a
DNS answer that changes after the check never reaches the internal address,
and no remote banner reaches a "Test connection" message."""

from __future__ import annotations

import socket
import time

import pytest

from delivery.destinations import destination_for
from delivery.destinations.base import TransferError
from delivery.forms import kind_form
from delivery.models import DeliveryDestination
from tests.portal.test_egress import REFUSED, RebindingResolver
from tests.servers.listener import RecordingListener, listeners_on_one_port

AZURE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
RULE = "only connects to public internet addresses"


def configs(host: str, port: int) -> dict[str, tuple[str, dict]]:
    """One configuration per kind (and per way to name an Azure endpoint)."""
    url = f"http://{host}:{port}"
    login = {"host": host, "port": port, "username": "rec", "password": "pw"}
    return {
        "ftp": ("ftp", {**login, "tls": "none"}),
        "ftps": ("ftp", {**login, "tls": "explicit"}),
        "sftp": ("sftp", login),
        "scp": ("scp", login),
        "s3": (
            "s3",
            {
                "bucket": "bucket-a",
                "region": "us-east-1",
                "endpoint_url": url,
                "access_key_id": "AKIDEXAMPLE",
                "secret_access_key": "secret",
            },
        ),  # fmt: skip
        "azure-key": (
            "azure",
            {
                "auth": "key",
                "account_name": "devstoreaccount1",
                "account_key": AZURE_KEY,
                "container": "rec",
                "endpoint_url": f"{url}/devstoreaccount1",
            },
        ),  # fmt: skip
        "azure-connection-string": (
            "azure",
            {
                "auth": "connection_string",
                "container": "rec",
                "connection_string": f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURE_KEY};"
                f"BlobEndpoint={url}/devstoreaccount1;",
            },
        ),  # fmt: skip
        "azure-sas": (
            "azure",
            {"auth": "sas", "sas_url": f"{url}/devstoreaccount1/rec?sv=2021-08-06&sp=rwdl&sig=abc"},
        ),
    }


KINDS = list(configs("h", 1))


@pytest.fixture
def no_exemptions(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []


def google_at(settings, base: str) -> None:
    settings.GOOGLE_OAUTH_CLIENT_ID = "client-id"
    settings.GOOGLE_OAUTH_CLIENT_SECRET = "client-secret"
    settings.GOOGLE_OAUTH_TOKEN_URI = base + "token"
    settings.GOOGLE_DRIVE_API_BASE = base


def check(kind: str, config: dict) -> TransferError:
    """Open and probe as "Test connection" does; return the error."""
    with pytest.raises(TransferError) as failed:
        with destination_for(kind, config) as dest:
            dest.check()
    return failed.value


def settle() -> None:
    time.sleep(0.3)  # a connection in flight would have been accepted by now


# -- connecting ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", KINDS)
def test_a_loopback_destination_fails_permanently_and_is_never_connected_to(no_exemptions, name):
    with RecordingListener("127.0.0.1") as listener:
        kind, config = configs("127.0.0.1", listener.port)[name]
        error = check(kind, config)
        settle()
        assert listener.accepted == []
    assert error.permanent
    assert "127.0.0.1 is a loopback address" in error.message and RULE in error.message


def test_google_drive_at_an_overridden_loopback_url_is_refused_and_never_connected_to(
    no_exemptions, settings
):
    with RecordingListener("127.0.0.1") as listener:
        google_at(settings, f"http://127.0.0.1:{listener.port}/")
        error = check("gdrive", {"refresh_token": "1//refresh", "folder": ""})
        settle()
        assert listener.accepted == []
    assert error.permanent and "127.0.0.1 is a loopback address" in error.message


@pytest.mark.parametrize("name", [*KINDS, "gdrive"])
def test_a_dns_answer_that_changes_after_the_check_never_reaches_the_internal_address(
    settings, monkeypatch, name
):
    """rebind.test first answers 127.0.0.2 (allowed here), then 127.0.0.1 (an
    internal service, refused): whatever the kind, 127.0.0.1 sees nothing."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    vetted, internal = listeners_on_one_port("127.0.0.2", "127.0.0.1", hang_up=True)
    try:
        monkeypatch.setattr(
            socket, "getaddrinfo", RebindingResolver("rebind.test", "127.0.0.2", "127.0.0.1")
        )
        if name == "gdrive":
            google_at(settings, f"http://rebind.test:{vetted.port}/")
            kind, config = "gdrive", {"refresh_token": "1//refresh", "folder": ""}
        else:
            kind, config = configs("rebind.test", vetted.port)[name]
        error = check(kind, config)
        settle()
        assert internal.accepted == []
        # Either it connected to the address it vetted (FTP, SSH: the first
        # answer), or the later answer was vetted and refused (HTTP kinds,
        # whose early check took the first answer).
        assert vetted.accepted or (
            error.permanent and "rebind.test does not resolve to a public internet address" in error.message
        )
    finally:
        vetted.close()
        internal.close()


# -- no oracle ------------------------------------------------------------------------------------

BANNER = b"+OK internal-cache v7.2.4 role=master\r\n"


@pytest.mark.parametrize(
    ("kind", "greeting"),
    [("ftp", BANNER), ("sftp", b"SSH-internal-cache v7.2.4 role=master\r\n"), ("scp", BANNER)],
)
def test_a_test_connection_never_shows_what_the_server_said(kind, greeting):
    with RecordingListener("127.0.0.1", greeting=greeting, hang_up=True) as listener:
        login = {"host": "127.0.0.1", "port": listener.port, "username": "u", "password": "p"}
        error = check(kind, {**login, "tls": "none"} if kind == "ftp" else login)
    for word in ("internal", "cache", "v7.2.4", "role", "master", "+OK"):
        assert word not in error.message, error.message


# -- saving -----------------------------------------------------------------------------------------


def form_data(kind_name: str, host: str) -> tuple[str, dict]:
    """Form data naming ``host`` in the kind's host or URL field."""
    bracketed = f"[{host}]" if ":" in host and not host.startswith("[") else host
    kind, config = configs("HOST", 9000)[kind_name]
    data = {}
    for key, value in config.items():
        text = str(value)
        data[key] = text.replace("HOST", bracketed if "://" in text or "=" in text else host)
    if kind in ("ftp", "sftp", "scp"):
        data["port"] = "21"
    return kind, data


@pytest.mark.parametrize("name", KINDS)
@pytest.mark.parametrize(("host", "rule"), REFUSED)
def test_every_destination_form_refuses_every_internal_address(no_exemptions, name, host, rule):
    kind, data = form_data(name, host)
    form = kind_form(kind, data)
    assert not form.is_valid()
    errors = " ".join(e for errs in form.errors.values() for e in errs)
    assert rule in errors and RULE in errors, errors


@pytest.mark.parametrize("name", KINDS)
def test_a_public_host_is_accepted(no_exemptions, name):
    kind, data = form_data(name, "8.8.8.8")
    form = kind_form(kind, data)
    assert form.is_valid(), form.errors


@pytest.mark.parametrize(
    ("kind", "setting"),
    [
        ("ftp", "host=169.254.169.254"),
        ("sftp", "host=localhost"),
        ("scp", "host=0x7f.1"),
        ("s3", "endpoint_url=http://[::1]:9000"),
        ("azure", "endpoint_url=http://10.0.0.5/devstoreaccount1"),
    ],
)
def test_manage_py_delivery_configure_exits_non_zero_naming_the_rule(
    world, no_exemptions, capsys, run_manage_py, kind, setting
):
    base = {
        "ftp": ["username=rec", "password=pw"],
        "sftp": ["username=rec", "password=pw"],
        "scp": ["username=rec", "password=pw"],
        "s3": ["bucket=bucket-a", "access_key_id=AK", "secret_access_key=SK"],
        "azure": ["account_name=acct", f"account_key={AZURE_KEY}", "container=rec"],
    }[kind]
    argv = ["manage.py", "delivery", "configure", world.app_id, "--kind", kind, "--types", "chat"]
    for item in [*base, setting]:
        argv += ["--set", item]
    with pytest.raises(SystemExit) as exited:
        run_manage_py(*argv[1:])
    assert exited.value.code not in (0, None)
    err = capsys.readouterr().err
    assert "Destination not saved" in err and RULE in err
    assert not DeliveryDestination.objects.exists()


@pytest.mark.parametrize(("host", "rule"), REFUSED)
def test_manage_py_delivery_configure_refuses_every_internal_address(
    world, no_exemptions, capsys, run_manage_py, host, rule
):
    argv = ["manage.py", "delivery", "configure", world.app_id, "--kind", "sftp"]
    argv += ["--types", "chat", "--set", f"host={host}", "--set", "username=rec"]
    argv += ["--set", "password=pw"]
    with pytest.raises(SystemExit) as exited:
        run_manage_py(*argv[1:])
    assert exited.value.code not in (0, None)
    err = capsys.readouterr().err
    assert rule in err and RULE in err
    assert not DeliveryDestination.objects.exists()


@pytest.mark.parametrize("name", ["s3", "azure-key", "azure-sas", "gdrive"])
def test_redirects_are_never_followed(settings, name):
    """An endpoint answering 302 towards another address: the client stops
    there, whatever the library's default."""
    with RecordingListener("127.0.0.1") as target:
        location = f"http://127.0.0.1:{target.port}/elsewhere"
        answer = (
            f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        with RecordingListener("127.0.0.1", answer=answer) as redirector:
            if name == "gdrive":
                google_at(settings, f"http://127.0.0.1:{redirector.port}/")
                kind, config = "gdrive", {"refresh_token": "1//refresh", "folder": ""}
            else:
                kind, config = configs("127.0.0.1", redirector.port)[name]
            check(kind, config)
            settle()
            assert redirector.accepted
        assert target.accepted == []


@pytest.mark.parametrize("name", ["ftp", "sftp", "s3", "azure-key"])
def test_a_destination_refused_since_it_was_saved_can_still_be_switched_off(
    world, settings, name
):
    from tests.factories import save_destination

    kind, data = form_data(name, "127.0.0.1")
    form = kind_form(kind, data)
    assert form.is_valid(), form.errors
    saved = save_destination(world.project, kind, form, name, ["chat"], True)
    settings.OUTBOUND_ALLOWED_NETWORKS = []  # the operator narrowed the exemptions
    unchanged = kind_form(kind, data, destination=saved)
    assert unchanged.is_valid(), unchanged.errors
    _kind, moved = form_data(name, "127.0.0.2")
    changed = kind_form(kind, moved, destination=saved)
    assert not changed.is_valid()
    assert "127.0.0.2 is a loopback address" in str(changed.errors)
    with pytest.raises(TransferError, match="127.0.0.1 is a loopback address"):
        with destination_for(kind, saved.merged_config()) as dest:
            dest.check()
