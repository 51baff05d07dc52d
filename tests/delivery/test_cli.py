"""`manage.py delivery configure|test|status|redeliver|connect-url`."""

from __future__ import annotations

import shlex
from io import StringIO
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.management import CommandError, call_command

from delivery.models import DeliveredFile, Delivery, DeliveryDestination
from recordings.models import Session
from tests.factories import make_recording
from tests.servers import ftp as ftp_servers
from tests.servers import gdrive_double as gdrive_servers
from tests.servers import sshd as sshd_servers

ftps_server = ftp_servers.ftps_server
sshd_server = sshd_servers.sshd_server
sshd = sshd_servers.sshd
gdrive_double = gdrive_servers.gdrive_double
gdrive = gdrive_servers.gdrive

# Local folder destinations under the test's tmp folder (DELIVERY_LOCAL_ROOTS).
pytestmark = pytest.mark.usefixtures("local_roots")


def run(*args: str) -> dict[str, str]:
    """Run the command; return its KEY=value pairs (later lines win)."""
    out = StringIO()
    call_command("delivery", *args, stdout=out, stderr=StringIO())
    return parse(out.getvalue())


def parse(text: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for line in text.splitlines():
        for word in shlex.split(line):
            key, _, value = word.partition("=")
            pairs[key] = value
    return pairs


def run_failing(*args: str) -> tuple[str, CommandError]:
    out = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("delivery", *args, stdout=out, stderr=StringIO())
    return out.getvalue(), caught.value


# -- configure ---------------------------------------------------------------------------------------


def test_configure_creates_a_destination_and_prints_its_id(world, tmp_path):
    out = run(
        "configure", world.app_id, "--kind", "local", "--types", "transcoded,chat",
        "--set", f"path={tmp_path}", "--set", "root=rec",
    )  # fmt: skip
    dest = DeliveryDestination.objects.get()
    assert out["DESTINATION_ID"] == str(dest.pk)
    assert out["KIND"] == "local" and out["TYPES"] == "transcoded,chat"
    assert dest.name == "local" and dest.enabled and dest.config["root"] == "rec"


def test_configure_updates_the_named_destination_keeping_other_settings(world, tmp_path):
    run("configure", world.app_id, "--kind", "local", "--name", "nas", "--types", "chat",
        "--set", f"path={tmp_path}", "--set", "root=a")  # fmt: skip
    out = run("configure", world.app_id, "--kind", "local", "--name", "nas", "--disable")
    dest = DeliveryDestination.objects.get()
    assert out["DESTINATION_ID"] == str(dest.pk) and out["ENABLED"] == "no"
    assert dest.config == {"path": str(tmp_path), "root": "a"} and dest.file_types == ["chat"]


def test_configure_reads_a_value_from_a_file_with_at_path(world, tmp_path):
    key_file = tmp_path / "secret.txt"
    key_file.write_text("wJalr-secret-from-file\n")
    run(
        "configure", world.app_id, "--kind", "s3", "--types", "transcoded",
        "--set", "bucket=recordings", "--set", "region=eu-west-1",
        "--set", "access_key_id=AKIAEXAMPLE", "--set", f"secret_access_key=@{key_file}",
    )  # fmt: skip
    dest = DeliveryDestination.objects.get()
    assert dest.secrets == {"secret_access_key": "wJalr-secret-from-file"}
    assert "secret_access_key" not in dest.config


def test_configure_errors_list_the_field_names(world):
    _out, error = run_failing(
        "configure", world.app_id, "--kind", "sftp", "--types", "chat,bogus", "--set", "port=x"
    )
    message = str(error)
    assert "Destination not saved" in message
    for name in ("file_types", "host", "port", "username"):
        assert f"{name}:" in message
    assert not DeliveryDestination.objects.exists()


def test_configure_refuses_unknown_keys_and_names_the_valid_ones(world):
    _out, error = run_failing("configure", world.app_id, "--kind", "local", "--set", "paht=/x")
    assert "Unknown setting 'paht' for kind local" in str(error) and "path" in str(error)


def test_configure_of_an_unknown_project_fails(db):
    _out, error = run_failing("configure", "f" * 24, "--kind", "local", "--set", "path=/tmp")
    assert "No project with APP_ID" in str(error)


# -- test --------------------------------------------------------------------------------------------


def test_test_exits_zero_after_writing_and_removing_a_probe(world, tmp_path):
    run("configure", world.app_id, "--kind", "local", "--set", f"path={tmp_path}")
    out = run("test", world.app_id)
    assert out["RESULT"] == "ok" and "Wrote and removed a probe" in out["MESSAGE"]
    assert list(tmp_path.iterdir()) == []


def test_test_fails_with_the_reason_when_the_folder_is_missing(world, tmp_path):
    run("configure", world.app_id, "--kind", "local", "--set", f"path={tmp_path / 'gone'}")
    out, error = run_failing("test", world.app_id)
    assert parse(out)["RESULT"] == "failed" and "does not exist" in parse(out)["ERROR"]
    assert "Test failed for: local" in str(error)


def test_a_failed_test_exits_non_zero_from_the_shell(world, tmp_path, capsys):
    from django.core.management import ManagementUtility

    run("configure", world.app_id, "--kind", "local", "--set", f"path={tmp_path / 'gone'}")
    with pytest.raises(SystemExit) as exited:
        ManagementUtility(["manage.py", "delivery", "test", world.app_id]).execute()
    assert exited.value.code != 0


def configure_ftps(world, server):
    config = server.config()
    run(
        "configure", world.app_id, "--kind", "ftp", "--types", "chat",
        *(a for k in ("host", "port", "username", "password", "tls") for a in ("--set", f"{k}={config[k]}")),
    )  # fmt: skip


def test_an_untrusted_ftps_certificate_prints_its_fingerprint_and_can_be_pinned(world, ftps_server):
    configure_ftps(world, ftps_server)
    out, _error = run_failing("test", world.app_id)
    assert parse(out)["TLS_CERT_FINGERPRINT"] == ftps_server.fingerprint
    assert "pinned_fingerprint" not in DeliveryDestination.objects.get().config

    out = run("test", world.app_id, "--trust-host-key")
    assert out["TRUSTED_FINGERPRINT"] == ftps_server.fingerprint and out["RESULT"] == "ok"
    assert DeliveryDestination.objects.get().config["pinned_fingerprint"] == ftps_server.fingerprint
    assert run("test", world.app_id)["RESULT"] == "ok"


def test_an_unknown_ssh_host_key_prints_host_key_fingerprint(world, sshd):
    config = sshd.config()
    run(
        "configure", world.app_id, "--kind", "sftp", "--name", "box", "--types", "chat",
        *(a for k in ("host", "port", "username", "password", "root") for a in ("--set", f"{k}={config[k]}")),
    )  # fmt: skip
    out, _error = run_failing("test", world.app_id, "--name", "box")
    assert parse(out)["HOST_KEY_FINGERPRINT"] == sshd.fingerprint
    out = run("test", world.app_id, "--name", "box", "--trust-host-key")
    assert out["RESULT"] == "ok"


# -- status and redeliver ------------------------------------------------------------------------------


@pytest.fixture
def deliveries(world, tmp_path):
    run("configure", world.app_id, "--kind", "local", "--types", "individual",
        "--set", f"path={tmp_path}")  # fmt: skip
    dest = DeliveryDestination.objects.get()
    rows = []
    for state in (Delivery.State.FAILED, Delivery.State.DELIVERED):
        recording = make_recording(world.project)
        Session.objects.filter(pk=recording.session_id).update(state=Session.State.READY)
        delivery = Delivery.objects.create(
            session=recording.session, destination=dest, state=state, attempts=3,
            bytes_total=recording.size, bytes_sent=recording.size // 2,
            last_error="Cannot write: disk full" if state == Delivery.State.FAILED else "",
        )  # fmt: skip
        DeliveredFile.objects.create(delivery=delivery, recording_file=recording)
        rows.append(delivery)
    return rows


def test_status_prints_a_line_per_destination_and_delivery(world, deliveries):
    out = StringIO()
    call_command("delivery", "status", world.app_id, stdout=out)
    lines = [
        dict(w.split("=", 1) for w in shlex.split(line)) for line in out.getvalue().splitlines()
    ]
    assert lines[0]["DESTINATION"] == "local" and lines[0]["KIND"] == "local"
    failed, delivered = deliveries
    by_id = {line["DELIVERY"]: line for line in lines[1:]}
    assert by_id[str(failed.pk)]["STATE"] == "failed"
    assert by_id[str(failed.pk)]["CONF_NUM"] == failed.session.conf_num
    assert by_id[str(failed.pk)]["BYTES"] == f"{failed.bytes_sent}/{failed.bytes_total}"
    assert by_id[str(failed.pk)]["LAST_ERROR"] == "Cannot write: disk full"
    assert by_id[str(delivered.pk)]["STATE"] == "delivered"


def test_redeliver_failed_requeues_the_failed_ones(world, deliveries):
    assert run("redeliver", world.app_id, "--failed")["REQUEUED"] == "1"
    assert Delivery.objects.get(pk=deliveries[0].pk).state == Delivery.State.QUEUED
    assert Delivery.objects.get(pk=deliveries[1].pk).state == Delivery.State.DELIVERED


def test_redeliver_a_conf_num_requeues_that_session(world, deliveries):
    delivered = deliveries[1]
    out = run("redeliver", world.app_id, "--conf-num", delivered.session.conf_num)
    assert out["REQUEUED"] == "1"
    assert Delivery.objects.get(pk=delivered.pk).state == Delivery.State.QUEUED


def test_redeliver_needs_a_choice_and_a_known_session(world, deliveries):
    with pytest.raises(CommandError):
        call_command("delivery", "redeliver", world.app_id, stdout=StringIO())
    _out, error = run_failing("redeliver", world.app_id, "--conf-num", "nope")
    assert "No session with conf_num 'nope'" in str(error)


def test_redeliver_since_a_date_delivers_past_sessions(world, tmp_path):
    run("configure", world.app_id, "--kind", "local", "--types", "individual",
        "--set", f"path={tmp_path}")  # fmt: skip
    recording = make_recording(world.project)
    Session.objects.filter(pk=recording.session_id).update(state=Session.State.READY)
    out = run("redeliver", world.app_id, "--since", "2000-01-01")
    assert out["REQUEUED"] == "1"
    assert Delivery.objects.get().session_id == recording.session_id


def test_redeliver_since_a_date_also_resends_delivered_sessions(world, deliveries):
    delivered = deliveries[1]
    out = run("redeliver", world.app_id, "--since", "2000-01-01")
    assert int(out["REQUEUED"]) >= 2
    assert Delivery.objects.get(pk=delivered.pk).state == Delivery.State.QUEUED


# -- connect-url ---------------------------------------------------------------------------------------


def test_connect_url_prints_a_consent_url_whose_callback_needs_no_browser_session(
    world, gdrive, client
):
    run("configure", world.app_id, "--kind", "gdrive", "--set", "folder=Recordings")
    out = run("connect-url", world.app_id)
    query = parse_qs(urlsplit(out["CONNECT_URL"]).query)
    assert out["CONNECT_URL"].startswith(gdrive.base_url + "o/oauth2/auth?")
    assert query["redirect_uri"] == [out["REDIRECT_URI"]]
    assert out["REDIRECT_URI"].endswith("/delivery/google/callback/")
    assert query["access_type"] == ["offline"] and query["prompt"] == ["consent"]

    import requests

    back = requests.get(out["CONNECT_URL"], allow_redirects=False, timeout=10)
    location = urlsplit(back.headers["Location"])
    response = client.get(f"{location.path}?{location.query}")  # a browser nobody logged into
    assert response.status_code == 200
    dest = DeliveryDestination.objects.get()
    assert dest.secrets["refresh_token"] in gdrive.grants
    assert "connect_nonce" not in dest.secrets
    assert gdrive.consent_email in response.content.decode()
    again = client.get(f"{location.path}?{location.query}")  # the nonce is single-use
    assert again.status_code == 400


def test_connect_url_needs_a_gdrive_destination(world):
    _out, error = run_failing("connect-url", world.app_id)
    assert "No Google Drive destination" in str(error)
