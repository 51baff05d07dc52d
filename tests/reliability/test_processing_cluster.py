"""Media processing on its own workers: while one long transcode runs on the
processing cluster, 20 small deliveries (and their ``file_transfer`` webhooks)
finish on the delivery cluster instead of queuing behind it.

The portal runs as real processes (gunicorn, ``manage.py qcluster`` and
``Q_CLUSTER_NAME=processing manage.py qcluster``), with ONE worker in each
cluster: with a single shared cluster the transcode would hold that worker
and every delivery would wait for it."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
import requests

from recordings.samples import generate_chat_transcript, generate_participant_media
from tests.servers.portal import PortalProcesses
from tests.servers.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.slow

# A 25-minute recording: its 1280x720 composite took about 9 minutes on the
# 2-core test machine (2.6x real time measured on 60 s), far longer than the
# 20 deliveries need even on a loaded machine.
LONG_SECONDS = 25 * 60
SMALL_SESSIONS = 20
DELIVERIES_TIMEOUT = 300


def composites_running(portal: PortalProcesses) -> int:
    """ffmpeg processes compositing a recording of this portal."""
    count = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:  # the process ended meanwhile
            continue
        if b"-filter_complex" in args and any(str(portal.data_dir).encode() in a for a in args):
            count += 1
    return count


def database(portal: PortalProcesses, query: str) -> list[tuple]:
    with sqlite3.connect(portal.data_dir / "portal.sqlite3", timeout=30) as db:
        return db.execute(query).fetchall()


def wait_until(check, timeout: float, what: str, portal: PortalProcesses):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        for proc in [portal.web, *portal.workers, *portal.processing_workers]:
            assert proc is not None and proc.poll() is None, f"{proc and proc.args} exited"
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.5)
    return result


@pytest.fixture
def portal(tmp_path):
    processes = PortalProcesses(extra_env={
        "Q_WORKERS": "1",
        "Q_PROCESSING_WORKERS": "1",
        "DELIVERY_LOCAL_ROOTS": str(tmp_path / "delivered"),
        # The webhook receiver listens on loopback (egress guard of issue 13).
        "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",
    })  # fmt: skip
    try:
        processes.setup()
        processes.start_web()
        yield processes
    finally:
        processes.stop()


def test_small_deliveries_and_their_webhooks_finish_while_a_long_transcode_runs(portal, tmp_path):
    target = tmp_path / "delivered"
    target.mkdir()
    creds = portal.create_project("Clusters")
    portal.manage("delivery", "configure", creds["APP_ID"], "--kind", "local", "--types", "chat",
                  "--set", f"path={target}")  # fmt: skip
    api, base = (creds["APP_ID"], creds["APP_KEY"]), portal.public_url

    def post(path: str, **kwargs) -> dict:
        response = requests.post(f"{base}{path}", auth=api, timeout=120, **kwargs)
        body = response.json()
        assert body["result"] == 0, (path, response.status_code, body)
        return body

    with WebhookReceiver() as receiver:
        portal.manage("webhook", "configure", creds["APP_ID"], "--url", receiver.url)
        room_id = post("/video/v2/rooms", json={
            "name": "Clusters", "owner_ref": "x", "settings": {"auto_recording": True},
            "sip": {"enabled": False},
        })["room"]["room_id"]  # fmt: skip

        # The long session: one participant recorded for 25 minutes.
        long_conf = post(f"/ingest/v1/rooms/{room_id}/sessions")["conf_num"]
        # The session really lasted that long (ingest may refuse a recording
        # longer than its session's wall-clock time).
        portal.manage("shell", "-c", (
            "from django.utils import timezone; from datetime import timedelta;"
            "from recordings.models import Session;"
            f"Session.objects.filter(conf_num={long_conf!r}).update("
            f"started_at=timezone.now() - timedelta(seconds={LONG_SECONDS + 60}))"
        ))  # fmt: skip
        media = tmp_path / "long.mp4"
        generate_participant_media(media, name="Long", seconds=LONG_SECONDS, index=0,
                                   width=160, height=90)  # fmt: skip
        with open(media, "rb") as fh:
            post(f"/ingest/v1/sessions/{long_conf}/files",
                 data={"type": "individual", "participant": "Long"},
                 files={"file": ("long.mp4", fh, "video/mp4")})  # fmt: skip
        post(f"/ingest/v1/sessions/{long_conf}/end")
        portal.start_worker()  # the delivery cluster, and the processing cluster with it
        wait_until(lambda: composites_running(portal), 120, "the transcode to start", portal)
        transcode_started = time.monotonic()

        # 20 small sessions, each with a chat transcript for the local folder.
        small = []
        for _ in range(SMALL_SESSIONS):
            conf_num = post(f"/ingest/v1/rooms/{room_id}/sessions")["conf_num"]
            chat = tmp_path / f"{conf_num}.json"
            generate_chat_transcript(chat, ["Ann", "Bo"], 30)
            with open(chat, "rb") as fh:
                post(f"/ingest/v1/sessions/{conf_num}/files", data={"type": "chat"},
                     files={"file": ("chat.json", fh, "application/json")})  # fmt: skip
            post(f"/ingest/v1/sessions/{conf_num}/end")
            small.append(conf_num)

        def all_delivered():
            rows = database(portal, "SELECT state FROM delivery_delivery")
            return len(rows) == SMALL_SESSIONS and {s for (s,) in rows} == {"delivered"}

        wait_until(all_delivered, DELIVERIES_TIMEOUT, "the 20 deliveries", portal)
        transfers = wait_until(
            lambda: (found := [r.json() for r in receiver.requests
                               if r.json().get("type") == "file_transfer"])
            and len(found) >= SMALL_SESSIONS and found,
            60, "20 file_transfer webhooks", portal,
        )  # fmt: skip
        took = time.monotonic() - transcode_started

        # The transcode is still running: nothing above waited for it.
        assert composites_running(portal) == 1
        [(long_state,)] = database(
            portal, f"SELECT state FROM recordings_session WHERE conf_num = '{long_conf}'"
        )
        assert long_state == "processing"
        # The small sessions had nothing to merge: ready at their end, with
        # nothing of theirs waiting behind the transcode.
        small_states = database(portal, "SELECT state FROM recordings_session WHERE conf_num IN "
                                f"({', '.join(repr(c) for c in small)})")  # fmt: skip
        assert {s for (s,) in small_states} == {"ready"}

    assert sorted(t["conf_num"] for t in transfers) == sorted(small)
    for conf_num in small:
        delivered = target / room_id / conf_num / "chat.json"
        assert json.loads(delivered.read_text()) == json.loads(
            (tmp_path / f"{conf_num}.json").read_text()
        )
    print(f"\n{SMALL_SESSIONS} deliveries and webhooks done {took:.0f} s into the transcode")
