"""Fault injection against the real portal processes (gunicorn, qcluster) on
PostgreSQL with real destinations (moto's S3 server, OpenSSH's SFTP): the
qcluster SIGKILLed at random moments, a destination down for a while, the
database restarted mid-run. Nothing may be lost, duplicated or left half-done.

A helper process stands in for the every-minute sweep schedule and runs the
same sweep every 2 s (see faults_support.sweep_forever for why). Set
FAULTS_KEEP_LOGS=<folder> to keep the portal's logs (web, workers, sweeper).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.reliability.faults_support import (
    MB,
    ensure_postgres_running,
    kv_lines,
    postgres_database,
    restart_postgres,
    sha256_file,
    shell_call,
    sql,
    start_sweeper,
    wait_until,
)
from tests.servers import moto_s3, sshd
from tests.servers.moto_s3 import MotoS3Server
from tests.servers.portal import PortalProcesses
from tests.servers.sshd import SHELL_USER, SSHServer
from tests.servers.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.slow
s3_server = moto_s3.s3_server
sshd_server = sshd.sshd_server

KILL_SEED = 1010
KILLS = 4
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
DELIVERIES = """
    SELECT d.id, d.state, d.attempts, d.bytes_sent, s.conf_num, dest.name, d.heartbeat_at
    FROM delivery_delivery d
    JOIN recordings_session s ON s.id = d.session_id
    JOIN delivery_deliverydestination dest ON dest.id = d.destination_id
    JOIN projects_project p ON p.id = dest.project_id
    WHERE p.app_id = %s ORDER BY d.id
"""

# Deliveries whose every file is verified (the manifest and the one
# file_transfer may still be due).
VERIFIED_FILES = """
    SELECT d.id FROM delivery_delivery d
    JOIN delivery_deliverydestination dest ON dest.id = d.destination_id
    JOIN projects_project p ON p.id = dest.project_id
    WHERE p.app_id = %s AND NOT EXISTS (
        SELECT 1 FROM delivery_deliveredfile f WHERE f.delivery_id = d.id AND f.state <> 'verified'
    )
"""


@dataclass
class Stack:
    portal: PortalProcesses
    database_url: str
    receiver: WebhookReceiver


@dataclass
class Project:
    app_id: str
    webhook_secret: str


@pytest.fixture(scope="module")
def stack():
    with postgres_database("portal_faults") as url, WebhookReceiver() as receiver:
        portal = PortalProcesses(database_url=url, extra_env={
            "DELIVERY_LEASE_SECONDS": "10",
            "DELIVERY_RETRY_BASE_SECONDS": "2",
            "DELIVERY_RETRY_MAX_SECONDS": "4",
            # Two workers: a qcluster then prefetches 2² tasks, so one that is
            # killed leaves most queued wake-ups for the next (see README).
            "Q_WORKERS": "2",
        })  # fmt: skip
        sweeper = None
        try:
            portal.setup()
            portal.start_web()
            sweeper = start_sweeper(portal)
            yield Stack(portal, url, receiver)
        finally:
            if sweeper is not None:
                portal.kill(sweeper)
            portal.stop()
            if (keep := os.environ.get("FAULTS_KEEP_LOGS")) and portal.logs.exists():
                shutil.copytree(portal.logs, keep, dirs_exist_ok=True)
            shutil.rmtree(portal.data_dir, ignore_errors=True)


@pytest.fixture
def portal(stack):
    """The module's portal; every qcluster a test starts is killed after it."""
    yield stack.portal
    for worker in stack.portal.workers:
        if worker.poll() is None:
            stack.portal.kill(worker)


def new_project(stack: Stack, name: str) -> Project:
    app_id = stack.portal.create_project(name)["APP_ID"]
    out = stack.portal.manage("webhook", "configure", app_id, "--url", stack.receiver.url).stdout
    return Project(app_id, kv_lines(out)["WEBHOOK_SECRET"])


def configure(portal, app_id: str, kind: str, settings: dict, secret_dir: Path) -> None:
    """``delivery configure`` with secrets passed as KEY=@file, never in argv."""
    args = []
    for key, value in settings.items():
        if key in ("password", "secret_access_key"):
            path = secret_dir / f"{kind}-{key}"
            path.write_text(str(value))
            value = f"@{path}"
        args += ["--set", f"{key}={value}"]
    portal.manage("delivery", "configure", app_id, "--kind", kind, "--name", kind,
                  "--types", "individual", *args)  # fmt: skip


def configure_s3(portal, app_id, server: MotoS3Server, bucket: str, root: str, secret_dir):
    configure(portal, app_id, "s3", server.destination_config(bucket=bucket, root=root), secret_dir)


def configure_sftp(portal, app_id, server: SSHServer, root: Path, secret_dir) -> None:
    config = server.config(SHELL_USER, root=str(root))
    del config["pinned_fingerprint"]  # pinned below the way an operator does it
    configure(portal, app_id, "sftp", config, secret_dir)
    out = portal.manage("delivery", "test", app_id, "--name", "sftp", "--trust-host-key").stdout
    assert kv_lines(out)["TRUSTED_FINGERPRINT"] == server.fingerprint


def make_sessions(portal, app_id: str, count: int, size: int) -> list[dict]:
    code = f"from tests.reliability.faults_support import create_sessions as c; " \
           f"c({app_id!r}, {count}, {size})"  # fmt: skip
    return json.loads(shell_call(portal, code).strip().splitlines()[-1])


def deliveries(stack: Stack, app_id: str) -> list[tuple]:
    return sql(stack.database_url, DELIVERIES, app_id)


def live_runs(stack: Stack, app_id: str, since: datetime) -> int:
    """Deliveries running now under a heartbeat newer than ``since`` (database time)."""
    rows = sql(stack.database_url, "SELECT now()")
    recent = max(since, rows[0][0] - timedelta(seconds=2))
    return sum(r[1] == "running" and r[6] is not None and r[6] > recent
               for r in deliveries(stack, app_id))  # fmt: skip


def all_delivered(stack: Stack, app_id: str, count: int):
    rows = deliveries(stack, app_id)
    return len(rows) == count and all(r[1] == "delivered" for r in rows) and rows


def sftp_tree_is_clean(root: Path, sessions: list[dict]) -> None:
    """Each session folder holds the file once, intact, and its manifest;
    nothing else (no temporary .part files) anywhere under ``root``."""
    expected = {}
    for s in sessions:
        folder = root / s["room_id"] / s["conf_num"]
        expected[folder / s["name"]] = s["sha256"]
        expected[folder / "manifest.json"] = None
    found = [p for p in root.rglob("*") if p.is_file()]
    assert not [p for p in found if ".part" in p.name], "temporary files left behind"
    assert sorted(found) == sorted(expected)
    for path, digest in expected.items():
        if digest:
            assert sha256_file(path) == digest, f"{path} is damaged"


def s3_sha256(server: MotoS3Server, bucket: str, key: str) -> str:
    import hashlib

    digest = hashlib.sha256()
    for chunk in server.client().get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(MB):
        digest.update(chunk)
    return digest.hexdigest()


def file_transfer_hooks(receiver: WebhookReceiver, app_id: str):
    return [
        r for r in list(receiver.requests)
        if r.json().get("type") == "file_transfer" and r.json().get("app_id") == app_id
    ]  # fmt: skip


# -- the qcluster SIGKILLed at random moments --------------------------------------------------


def test_sigkilled_workers_deliver_every_file_exactly_once_intact_with_one_webhook_each(
    stack,
    portal,
    s3_server,
    sshd_server,
    tmp_path,
):
    project = new_project(stack, "Kill")
    bucket = f"faults-kill-{secrets.token_hex(3)}"
    s3 = s3_server.client()
    s3.create_bucket(Bucket=bucket)
    # Every PUT / CompleteMultipartUpload that lands makes a version: a
    # duplicate transfer would show as a second version of the key.
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    sftp_root = sshd_server.upload_dir(SHELL_USER) / f"faults-kill-{secrets.token_hex(3)}"
    configure_s3(portal, project.app_id, s3_server, bucket, "kill", tmp_path)
    configure_sftp(portal, project.app_id, sshd_server, sftp_root, tmp_path)
    sessions = make_sessions(portal, project.app_id, 10, 50 * MB)
    try:
        started = time.monotonic()
        worker = portal.start_worker()
        wait_until(lambda: sum(r[3] for r in deliveries(stack, project.app_id)), 60,
                   "the first bytes to go out")  # fmt: skip
        rng = random.Random(KILL_SEED)
        kills = []
        killed_at = EPOCH
        for _ in range(KILLS):
            time.sleep(rng.uniform(1, 4))
            # Each kill must cut transfers of the current qcluster, not hit one
            # still waiting for the dead one's leases to run out.
            live = wait_until(lambda k=killed_at: live_runs(stack, project.app_id, k), 60,
                              "the restarted qcluster to take work back")  # fmt: skip
            (killed_at,) = sql(stack.database_url, "SELECT now()")[0]
            portal.kill(worker)
            kills.append((round(time.monotonic() - started, 1), live))
            worker = portal.start_worker()
        rows = wait_until(lambda: all_delivered(stack, project.app_id, 20), 180,
                          "all 20 deliveries to be delivered", every=1)  # fmt: skip
        elapsed = time.monotonic() - started
        print(f"\nkills at (s, transfers cut): {[k[:2] for k in kills]}; all delivered after "
              f"{elapsed:.0f} s; attempts: {sorted(Counter(r[2] for r in rows).items())}")  # fmt: skip

        # Exactly once, intact, nothing half-done: S3 ...
        versions = s3.list_object_versions(Bucket=bucket, Prefix="kill/")
        per_key = Counter(v["Key"] for v in versions.get("Versions", []))
        assert not versions.get("DeleteMarkers")
        for s in sessions:
            key = f"kill/{s['room_id']}/{s['conf_num']}/{s['name']}"
            assert per_key.pop(key) == 1, f"{key} was written more than once"
            assert s3_sha256(s3_server, bucket, key) == s["sha256"]
        assert set(per_key) == {
            f"kill/{s['room_id']}/{s['conf_num']}/manifest.json" for s in sessions
        }
        assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        # ... and SFTP.
        sftp_tree_is_clean(sftp_root, sessions)
        files = sql(stack.database_url, """
            SELECT f.state, count(*), count(DISTINCT (f.delivery_id, f.recording_file_id))
            FROM delivery_deliveredfile f JOIN delivery_delivery d ON d.id = f.delivery_id
            WHERE d.id = ANY(%s) GROUP BY f.state""", [r[0] for r in rows])  # fmt: skip
        assert files == [("verified", 20, 20)]

        # One file_transfer webhook per delivery, each received once, signed. (150 s:
        # a kill in the middle of a send leaves the message to its 2-minute lease.)
        wait_until(lambda: len(file_transfer_hooks(stack.receiver, project.app_id)) >= 20, 150,
                   "20 file_transfer webhooks")  # fmt: skip
        time.sleep(2)  # a late duplicate would show up now
        hooks = file_transfer_hooks(stack.receiver, project.app_id)
        per_id = Counter(r.headers["webhook-id"] for r in hooks)
        assert len(per_id) == 20 and set(per_id.values()) == {1}, per_id
        about = {
            (p["conf_num"], p["destination"]["label"])
            for p in (WebhookReceiver.verify(project.webhook_secret, r) for r in hooks)
        }
        assert about == {(s["conf_num"], d) for s in sessions for d in ("s3", "sftp")}
        messages = sql(stack.database_url, """
            SELECT count(*) FROM projects_webhookmessage m JOIN projects_project p
            ON p.id = m.project_id WHERE p.app_id = %s AND m.event_type = 'file_transfer'""",
            project.app_id)  # fmt: skip
        assert messages == [(20,)]

        # A resend goes out under the same webhook-id.
        msg_id = hooks[0].headers["webhook-id"]
        out = shell_call(portal, (
            "from webhooks.models import WebhookMessage; from webhooks.sending import resend; "
            f"print('STATUS=%s' % resend(WebhookMessage.objects.get(msg_id={msg_id!r})).status_code)"
        ))  # fmt: skip
        assert kv_lines(out)["STATUS"] == "204"
        hooks = file_transfer_hooks(stack.receiver, project.app_id)
        assert [r.headers["webhook-id"] for r in hooks].count(msg_id) == 2
        assert len({r.headers["webhook-id"] for r in hooks}) == 20
    finally:
        shutil.rmtree(sftp_root, ignore_errors=True)
        _empty_bucket(s3, bucket)


def _empty_bucket(s3, bucket: str) -> None:
    """Free moto's memory: the 500 MB of this test live in the server process."""
    try:
        listing = s3.list_object_versions(Bucket=bucket)
        for v in listing.get("Versions", []) + listing.get("DeleteMarkers", []):
            s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
        for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
        s3.delete_bucket(Bucket=bucket)
    except Exception:  # the server may be down after a failed test; it is dropped anyway
        pass


# -- a destination down for a while ------------------------------------------------------------


def logged_in(portal) -> requests.Session:
    browser = requests.Session()
    page = browser.get(portal.public_url + "/accounts/login/", timeout=30)
    page.raise_for_status()
    answer = browser.post(portal.public_url + "/accounts/login/", timeout=30, data={
        "username": "ops", "password": "ops-password-123",
        "csrfmiddlewaretoken": browser.cookies["csrftoken"],
    }, allow_redirects=False)  # fmt: skip
    assert answer.status_code == 302, answer.text[:500]
    return browser


def test_a_destination_down_for_a_while_means_waiting_retries_on_schedule_then_delivered(
    stack,
    portal,
    s3_server,
    tmp_path,
):
    project = new_project(stack, "Outage")
    root = f"outage-{secrets.token_hex(3)}"
    configure_s3(portal, project.app_id, s3_server, s3_server.bucket, root, tmp_path)
    sessions = make_sessions(portal, project.app_id, 4, 24 * MB)
    browser = logged_in(portal)
    page_url = f"{portal.public_url}/projects/{project.app_id}/deliveries/"
    try:
        portal.start_worker()
        wait_until(lambda: sum(r[3] for r in deliveries(stack, project.app_id)), 60,
                   "the first bytes to go out", every=0.1)  # fmt: skip
        s3_server.stop()
        down_at = time.monotonic()
        before = {r[0] for r in deliveries(stack, project.app_id) if r[1] == "delivered"}
        assert len(before) < 4, "everything was delivered before the server went down"
        # Files verified before the outage are rightly not sent again (only the
        # manifest and the announcement were left), but the restarted moto
        # forgot them: only the others can be checked in the bucket.
        verified_before = {row[0] for row in sql(stack.database_url, VERIFIED_FILES,
                                                 project.app_id)}  # fmt: skip

        def waiting_page():
            html = browser.get(page_url, timeout=30).text
            return "Waiting to retry" in html and "waiting to retry at" in html

        wait_until(waiting_page, 30, "the deliveries page to show the wait", every=0.3)
        status = portal.manage("delivery", "status", project.app_id).stdout
        assert "retry_wait" in status or "running" in status, status
        # Backoff 2 s then 4 s (capped): several attempts while the server is down.
        wait_until(lambda: min(r[2] for r in deliveries(stack, project.app_id)
                               if r[0] not in before) >= 3, 40,
                   "every waiting delivery to try again on schedule")  # fmt: skip
        assert not {r[0] for r in deliveries(stack, project.app_id) if r[1] == "delivered"} - before
        s3_server.start()  # same port, bucket and key; moto forgot the objects
        up_after = time.monotonic() - down_at
        rows = wait_until(lambda: all_delivered(stack, project.app_id, 4), 60,
                          "the deliveries to complete once the server is back")  # fmt: skip
        print(f"\nserver down {up_after:.0f} s; attempts {[r[2] for r in rows]}")
        s3 = s3_server.client()
        by_conf = {s["conf_num"]: s for s in sessions}
        for delivery_id, _state, _attempts, _sent, conf_num, *_ in rows:
            if delivery_id in before or delivery_id in verified_before:
                continue
            s = by_conf[conf_num]
            key = f"{root}/{s['room_id']}/{conf_num}/{s['name']}"
            assert s3_sha256(s3_server, s3_server.bucket, key) == s["sha256"]
        assert s3.list_multipart_uploads(Bucket=s3_server.bucket).get("Uploads", []) == []
        assert "Waiting to retry" not in browser.get(page_url, timeout=30).text
    finally:
        if not s3_server.running:
            s3_server.start()


# -- PostgreSQL restarted mid-run ---------------------------------------------------------------


def test_workers_reconnect_after_a_postgresql_restart_and_finish(
    stack,
    portal,
    sshd_server,
    tmp_path,
):
    project = new_project(stack, "Restart")
    sftp_root = sshd_server.upload_dir(SHELL_USER) / f"faults-pg-{secrets.token_hex(3)}"
    configure_sftp(portal, project.app_id, sshd_server, sftp_root, tmp_path)
    sessions = make_sessions(portal, project.app_id, 4, 30 * MB)
    try:
        worker = portal.start_worker()
        wait_until(lambda: sum(r[3] for r in deliveries(stack, project.app_id)), 60,
                   "the first bytes to go out", every=0.1)  # fmt: skip
        started = time.monotonic()
        try:
            restart_postgres()
        finally:
            ensure_postgres_running()
        rows = wait_until(lambda: all_delivered(stack, project.app_id, 4), 90,
                          "the deliveries to finish after the restart", every=1)  # fmt: skip
        print(
            f"\ndelivered {time.monotonic() - started:.0f} s after the restart; "
            f"attempts {[r[2] for r in rows]}"
        )
        assert worker.poll() is None, "the qcluster died with the database"
        # The runs under way rode out the restart; none waited for its lease to expire.
        assert [r[2] for r in rows] == [1, 1, 1, 1]
        sftp_tree_is_clean(sftp_root, sessions)
        assert portal.get("/accounts/login/").status_code == 200
    finally:
        ensure_postgres_running()
        shutil.rmtree(sftp_root, ignore_errors=True)
