"""No secret in plaintext anywhere the portal writes or shows.

Sorted last in the suite (tests/reliability/ is the last test folder and this
the last module in it). A real portal (gunicorn + qcluster on SQLite in a
temporary DATA_DIR) goes through a representative run with every kind of
secret the suite uses: a project's app key and recording password (changed
through the access page), S3 / SFTP (password, and a passphrase-protected
key) / FTP destinations set up through ``manage.py delivery configure``, an
S3 destination with a wrong secret key (so failing deliveries write their
errors), a webhook with a signing secret and a Basic password. Then every
byte of DATA_DIR (database file and WAL, a SQL dump, the processes' logs,
Delivery.log and WebhookAttempt rows included), every rendered portal page,
the webhook bodies, the files the destinations received and the output of
the non-one-time commands are searched for each secret, also as Basic-auth
base64 and URL-quoted. Outputs that show a secret once by design
(createproject, ``webhook configure``) are not searched.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
import sqlite3
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
import requests
from django.urls import reverse

from tests.portal.test_url_walk import project_pages
from tests.servers.ftp import ftp_server  # noqa: F401
from tests.servers.moto_s3 import s3, s3_server  # noqa: F401
from tests.servers.portal import TEST_FERNET_KEY, PortalProcesses
from tests.servers.sshd import SHELL_USER, sshd, sshd_server  # noqa: F401
from tests.servers.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.slow

OPS = ("ops", "ops-password-123")  # the account PortalProcesses.setup() creates
TYPES = "chat,metadata"  # no individual recordings: no ffmpeg needed


class Secrets:
    """Named secrets and the forms they could leak in."""

    def __init__(self):
        self.named: dict[str, str] = {}

    def add(self, name: str, value: str) -> str:
        assert value and len(value) >= 8, f"{name} is too short to search for"
        self.named[name] = value
        return value

    def add_basic(self, name: str, user: str, password: str) -> None:
        self.named[f"{name} (Basic header)"] = base64.b64encode(
            f"{user}:{password}".encode()
        ).decode()

    def variants(self) -> list[tuple[str, bytes]]:
        found = []
        for name, value in self.named.items():
            forms = {value, urllib.parse.quote(value, safe=""), json.dumps(value)[1:-1]}
            found += [(name, form.encode()) for form in forms]
        return found


def configure(portal, app_id: str, kind: str, name: str, settings: dict, folder: Path) -> str:
    """``delivery configure`` with secret values passed as KEY=@file, never in argv."""
    args = []
    for key, value in settings.items():
        if key in ("password", "secret_access_key", "private_key", "passphrase"):
            path = folder / f"{name}-{key}"
            path.write_text(str(value))
            value = f"@{path}"
        args += ["--set", f"{key}={value}"]
    return portal.manage("delivery", "configure", app_id, "--kind", kind, "--name", name,
                         "--types", TYPES, *args).stdout  # fmt: skip


def database_rows(db: Path, query: str) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute(query).fetchall()


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.5)
    return result


def csrf_of(page: requests.Response) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert match, f"no CSRF token on {page.url}"
    return match.group(1)


def logged_in(portal: PortalProcesses) -> requests.Session:
    browser = requests.Session()
    login = browser.get(f"{portal.public_url}/accounts/login/", timeout=30)
    done = browser.post(
        login.url, data={"username": OPS[0], "password": OPS[1],
                         "csrfmiddlewaretoken": csrf_of(login)}, timeout=30,
    )  # fmt: skip
    assert "sessionid" in browser.cookies, done.text[:500]
    return browser


def make_key_pair(folder: Path, passphrase: str) -> tuple[str, str]:
    key = folder / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-f", str(key)],
                   check=True)  # fmt: skip
    return key.read_text(), (folder / "id_ed25519.pub").read_text()


def test_no_secret_of_a_full_run_appears_in_plaintext(tmp_path, s3, sshd, ftp_server):  # noqa: F811
    found = Secrets()
    portal = PortalProcesses(extra_env={"DELIVERY_MAX_ATTEMPTS": "1"})
    receiver = WebhookReceiver().start()
    scanned: dict[str, bytes] = {}  # what -> bytes to search

    def keep(what: str, data: str | bytes) -> None:
        scanned[what] = data.encode() if isinstance(data, str) else data

    try:
        portal.setup()
        found.add("the ops account password", OPS[1])
        found.add("FIELD_ENCRYPTION_KEYS", TEST_FERNET_KEY)
        found.add("SECRET_KEY", portal.env["SECRET_KEY"])
        creds = portal.create_project("Secrets")  # shows APP_KEY once, by design
        app_id = creds["APP_ID"]
        found.add("APP_KEY", creds["APP_KEY"])
        found.add_basic("APP_ID:APP_KEY", app_id, creds["APP_KEY"])
        found.add("default RECORDING_PASSWORD", creds["RECORDING_PASSWORD"])

        hook_password = found.add("webhook Basic password", secrets.token_urlsafe(18))
        found.add_basic("webhook Basic", "hooks", hook_password)
        (tmp_path / "hook-pw").write_text(hook_password)
        receiver.require_basic("hooks", hook_password)
        out = portal.manage("webhook", "configure", app_id, "--url", receiver.url,
                            "--basic-user", "hooks", "--basic-password-file",
                            str(tmp_path / "hook-pw")).stdout  # fmt: skip
        whsec = re.search(r"WEBHOOK_SECRET=(\S+)", out).group(1)  # shown once, by design
        found.add("webhook signing secret", whsec)
        found.add("webhook signing key", whsec.removeprefix("whsec_"))

        s3_config = s3.destination_config(root="scan")
        found.add("S3 secret access key", s3_config["secret_access_key"])
        keep("configure s3", configure(portal, app_id, "s3", "s3", s3_config, tmp_path))
        wrong = found.add("wrong S3 secret access key", "wrong" + secrets.token_urlsafe(24))
        keep(
            "configure s3-wrong",
            configure(
                portal,
                app_id,
                "s3",
                "s3-wrong",
                {**s3_config, "secret_access_key": wrong},
                tmp_path,
            ),
        )

        sftp_root = sshd.upload_dir(SHELL_USER) / f"scan-{secrets.token_hex(3)}"
        sftp = sshd.config(SHELL_USER, root=str(sftp_root))
        found.add("SFTP password", sftp["password"])
        del sftp["pinned_fingerprint"]
        keep("configure sftp", configure(portal, app_id, "sftp", "sftp", sftp, tmp_path))
        passphrase = found.add("SSH key passphrase", secrets.token_urlsafe(15))
        private, public = make_key_pair(tmp_path, passphrase)
        for n, line in enumerate(private.splitlines()):
            if not line.startswith("-----"):
                found.add(f"SSH private key line {n}", line)
        sshd.authorize(SHELL_USER, public)
        by_key = {k: v for k, v in sftp.items() if k != "password"}
        keep("configure sftp-key", configure(portal, app_id, "sftp", "sftp-key",
                                             {**by_key, "private_key": private,
                                              "passphrase": passphrase}, tmp_path))  # fmt: skip
        for name in ("sftp", "sftp-key"):
            keep(f"test {name}", portal.manage("delivery", "test", app_id, "--name", name,
                                               "--trust-host-key").stdout)  # fmt: skip

        ftp = ftp_server.config(root=f"scan-{secrets.token_hex(3)}")
        del ftp["passive"]
        found.add("FTP password", ftp["password"])
        keep("configure ftp", configure(portal, app_id, "ftp", "ftp", ftp, tmp_path))
        for name in ("s3", "ftp"):
            keep(f"test {name}", portal.manage("delivery", "test", app_id, "--name", name).stdout)
        failing = portal.manage("delivery", "test", app_id, "--name", "s3-wrong", check=False)
        assert failing.returncode != 0
        keep("test s3-wrong", failing.stdout + failing.stderr)

        portal.start_web()
        portal.start_worker()
        api = (app_id, creds["APP_KEY"])
        base = portal.public_url
        room = requests.post(f"{base}/video/v2/rooms", json={"name": "scan"}, auth=api, timeout=30)
        room_id = room.json()["room"]["room_id"]
        conf_num = requests.post(f"{base}/ingest/v1/rooms/{room_id}/sessions", auth=api,
                                 timeout=30).json()["conf_num"]  # fmt: skip
        stream_key = found.add("streaming key", "sk_" + secrets.token_urlsafe(18))
        streaming = requests.post(
            f"{base}/ingest/v1/sessions/{conf_num}/streaming/start", auth=api, timeout=30,
            json={"config": {"rtmp_url": f"rtmps://live.example.com/app/{stream_key}"}},
        )  # fmt: skip
        assert streaming.json()["streaming"]["state"] == "on", streaming.text
        keep("streaming start", streaming.content)
        for kind, name in (("chat", "chat.json"), ("metadata", "metadata.json")):
            sent = requests.post(
                f"{base}/ingest/v1/sessions/{conf_num}/files", auth=api, timeout=30,
                data={"type": kind}, files={"file": (name, json.dumps({"n": name}).encode())},
            )  # fmt: skip
            assert sent.status_code == 201, sent.text
        ended = requests.post(f"{base}/ingest/v1/sessions/{conf_num}/end", auth=api, timeout=30)
        assert ended.status_code == 200, ended.text
        keep("session", requests.get(f"{base}/ingest/v1/sessions/{conf_num}", auth=api,
                                     timeout=30).content)  # fmt: skip

        db = portal.data_dir / "portal.sqlite3"
        states = "SELECT d.name, x.state FROM delivery_delivery x " \
                 "JOIN delivery_deliverydestination d ON d.id = x.destination_id"  # fmt: skip

        def settled():
            rows = dict(database_rows(db, states))
            good = all(rows.get(n) == "delivered" for n in ("s3", "sftp", "sftp-key", "ftp"))
            return good and rows.get("s3-wrong") == "failed" and rows

        wait_for(settled, 120, "four deliveries to arrive and the wrong-secret one to fail")
        wait_for(lambda: len(receiver.requests) >= 5, 60, "file_transfer and failure webhooks")
        keep("delivery status", portal.manage("delivery", "status", app_id).stdout)

        browser = logged_in(portal)
        access = f"{base}/projects/{app_id}/settings/access/"
        new_password = found.add("new recording password", secrets.token_urlsafe(16))
        found.add_basic("recording credentials", creds["RECORDING_USERNAME"], new_password)
        found.add_basic("default recording credentials", creds["RECORDING_USERNAME"],
                        creds["RECORDING_PASSWORD"])  # fmt: skip
        changed = browser.post(access, timeout=30, data={
            "csrfmiddlewaretoken": csrf_of(browser.get(access, timeout=30)),
            "account_password": OPS[1], "new_password": new_password,
            "confirm_password": new_password,
        })  # fmt: skip
        assert "was changed" in changed.text, changed.text[:2000]
        url = f"{base}/recordings/{app_id}/{room_id}/{conf_num}/chat.json"
        assert requests.get(url, auth=(creds["RECORDING_USERNAME"], new_password),
                            timeout=30).status_code == 200  # fmt: skip

        pages = ["/projects/", "/api/docs/", "/api/schema/", "/video/recordings/"]
        pages += [reverse(name, kwargs={"app_id": app_id}) for name in project_pages()]
        ids = database_rows(db, "SELECT id, name FROM delivery_deliverydestination")
        pages += [reverse("delivery:edit", kwargs={"app_id": app_id, "dest_id": pk})
                  for pk, _ in ids]  # fmt: skip
        pages += [
            reverse("recordings:file", kwargs={"app_id": app_id, "file_id": pk})
            for (pk,) in database_rows(db, "SELECT id FROM recordings_recordingfile")
        ]
        for path in pages:
            page = browser.get(base + path, timeout=30)
            assert page.status_code == 200, f"{path}: {page.status_code}"
            keep(f"page {path}", page.content)
        settings_page = browser.get(f"{base}/projects/{app_id}/settings/delivery/", timeout=30)
        for pk, name in ids:  # the pages' own "Test connection" buttons
            tested = browser.post(
                base + reverse("delivery:test", kwargs={"app_id": app_id, "dest_id": pk}),
                data={"csrfmiddlewaretoken": csrf_of(settings_page)}, timeout=60,
            )  # fmt: skip
            keep(f"page after testing {name}", tested.content)
        webhook_page = browser.get(f"{base}/projects/{app_id}/settings/webhook/", timeout=30)
        sent = browser.post(
            base + reverse("projects:webhook_send_test", kwargs={"app_id": app_id}),
            data={"csrfmiddlewaretoken": csrf_of(webhook_page)}, timeout=60,
        )  # fmt: skip
        keep("page after a webhook test", sent.content)
        for path in ("/projects/", f"/projects/{app_id}/recordings/"):
            keep(f"page {path} after the password change", browser.get(base + path).content)
    finally:
        portal.stop(keep_data=True)  # scanned below, then removed
        receiver.close()

    for n, request in enumerate(receiver.requests):
        keep(f"webhook body {n}", request.body)
    with sqlite3.connect(portal.data_dir / "portal.sqlite3") as conn:
        keep("SQL dump", "\n".join(conn.iterdump()))
    for path in sorted(portal.data_dir.rglob("*")):
        if path.is_file() and "static" not in path.relative_to(portal.data_dir).parts:
            keep(f"DATA_DIR/{path.relative_to(portal.data_dir)}", path.read_bytes())
    for folder in (sftp_root, ftp_server.read(ftp["root"])):
        for path in folder.rglob("*"):
            if path.is_file():
                keep(f"delivered {path}", path.read_bytes())
    # Sanity: the logs and pages are there, and the search finds what is in them.
    logs = [data for what, data in scanned.items() if what.startswith("DATA_DIR/logs/worker")]
    assert logs and any(conf_num.encode() in data for data in logs)
    assert sum(what.startswith("page ") for what in scanned) >= len(pages)

    leaks = [
        f"{name} in {what}"
        for what, data in scanned.items()
        for name, form in found.variants()
        if form in data
    ]
    # Kept only when the scan failed, to look at.
    if not leaks:
        shutil.rmtree(portal.data_dir, ignore_errors=True)
    assert not leaks, (
        f"secrets in plaintext (data kept in {portal.data_dir}):\n" + "\n".join(sorted(set(leaks)))
    )
