"""Hostile uploads against the real portal (gunicorn + qcluster): one tenant
tries to make ffmpeg read another tenant's recording, to occupy the workers
with a file claiming 100 hours or a huge image, and to store script as a
recording. Each is refused at the door with nothing kept, and a real
recording still goes through to a composite."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from recordings.media import probe
from tests import media_samples
from tests.servers.portal import PortalProcesses

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def portal():
    processes = PortalProcesses()
    processes.setup()
    processes.start_web()
    processes.start_worker()
    yield processes
    processes.stop()


class Tenant:
    def __init__(self, portal: PortalProcesses, name: str):
        creds = portal.create_project(name)
        self.portal, self.creds = portal, creds
        self.api = (creds["APP_ID"], creds["APP_KEY"])
        room = self.call("POST", "/video/v2/rooms", json={"name": name})
        self.room_id = room["room"]["room_id"]

    def call(self, method: str, path: str, **kwargs) -> dict:
        response = requests.request(
            method, self.portal.public_url + path, auth=self.api, timeout=120, **kwargs
        )
        assert response.status_code < 300, response.text
        return response.json()

    def start(self) -> str:
        return self.call("POST", f"/ingest/v1/rooms/{self.room_id}/sessions")["conf_num"]

    def upload(self, conf_num: str, name: str, body: bytes, kind: str = "individual"):
        return requests.post(
            f"{self.portal.public_url}/ingest/v1/sessions/{conf_num}/files", auth=self.api,
            timeout=120, data={"type": kind, "participant": "P"},
            files={"file": (name, body, "text/html")},
        )  # fmt: skip


def session_row(portal: PortalProcesses, conf_num: str) -> dict:
    out = portal.manage("shell", "-c", (
        "import json; from recordings.models import Session;"
        f"s = Session.objects.get(conf_num={conf_num!r});"
        "print(json.dumps({'state': s.state, 'error': s.processing_error,"
        " 'files': list(s.files.values('name', 'type', 'content_type', 'storage_path'))}))"
    )).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def wait_until_processed(portal: PortalProcesses, conf_num: str, seconds: float = 180) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        row = session_row(portal, conf_num)
        if row["state"] != "processing":
            return row
        time.sleep(1)
    raise AssertionError(f"session {conf_num} still processing after {seconds} s")


def test_hostile_uploads_are_refused_and_a_real_recording_still_goes_through(portal):
    victim, attacker = Tenant(portal, "Victim"), Tenant(portal, "Attacker")
    theirs = victim.start()
    assert victim.upload(theirs, "ceo.mp4", media_samples.recording(2, index=5)).status_code == 201
    [secret] = session_row(portal, theirs)["files"]
    secret_path = Path(portal.data_dir) / "recordings" / secret["storage_path"]
    assert secret_path.is_file()

    conf_num = attacker.start()
    attacks = [
        ("page.html", media_samples.HTML_PAGE, "individual", 415, "an HTML page"),
        ("page.mp4", media_samples.HTML_PAGE, "live", 415, "an HTML page"),
        ("steal.m3u8", media_samples.hls_playlist(secret_path), "individual", 415,
         "an HLS playlist"),
        ("steal.mp4", media_samples.concat_list(secret_path), "individual", 415, "a concat list"),
        ("huge.png", media_samples.png(12000, 12000), "live", 415, "a PNG image"),
        ("long.mkv", media_samples.claiming_duration(100 * 3600), "individual", 422,
         "MEDIA_MAX_SECONDS"),
        ("wide.mkv", media_samples.oversized_video(4160, 64), "individual", 422, "4096x2160"),
        ("chat.json", b"<script>alert(1)</script>", "chat", 422, "must be UTF-8 JSON"),
    ]  # fmt: skip
    for name, body, kind, status, says in attacks:
        started = time.monotonic()
        response = attacker.upload(conf_num, name, body, kind)
        assert response.status_code == status, (name, response.text)
        assert response.json()["result"] != 0 and says in response.json()["error"], name
        assert "text/html" not in response.text
        assert time.monotonic() - started < 30, f"{name} took the web worker for long"
    assert session_row(portal, conf_num)["files"] == []
    uploads = Path(portal.data_dir) / "tmp" / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []
    attacker_store = Path(portal.data_dir) / "recordings" / attacker.creds["APP_ID"]
    assert (
        not attacker_store.exists() or [p for p in attacker_store.rglob("*") if p.is_file()] == []
    )

    # The attacker's real recording goes through, and nothing of the victim's is in it.
    own = attacker.upload(conf_num, "me.mp4", media_samples.recording(3, index=1))
    assert own.status_code == 201, own.text
    chat = attacker.upload(conf_num, "chat.json", b'[{"message": "hi"}]', "chat")
    assert chat.status_code == 201, chat.text
    attacker.call("POST", f"/ingest/v1/sessions/{conf_num}/end")
    row = wait_until_processed(portal, conf_num)
    assert row["state"] == "ready", row
    types = {f["name"]: f["content_type"] for f in row["files"]}
    assert types == {"me.mp4": "video/mp4", "chat.json": "application/json",
                     "transcoded.mp4": "video/mp4"}  # fmt: skip
    transcoded = next(f for f in row["files"] if f["type"] == "transcoded")
    composite = probe(Path(portal.data_dir) / "recordings" / transcoded["storage_path"])
    assert composite.duration == pytest.approx(3.0, abs=0.5)
