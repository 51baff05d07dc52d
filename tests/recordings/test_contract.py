"""Issue 3's "done when": a program that knows only DESIGN.md creates a room,
runs a 3-participant session with ~6 s files, ends it and within a minute
receives verifiable signed `recording` and `transcoded` webhooks, then
downloads a composite whose duration matches the inputs within 1 s. The
portal runs as real processes: gunicorn and a qcluster worker."""

from __future__ import annotations

import time

import pytest
import requests

from recordings.media import probe
from recordings.samples import generate_participant_media
from tests.servers.portal import PortalProcesses
from tests.servers.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.slow

SECONDS = [5.0, 6.0, 6.0]


@pytest.fixture
def portal():
    processes = PortalProcesses()
    processes.setup()
    processes.start_web()
    processes.start_worker()
    yield processes
    processes.stop()


def test_a_session_is_announced_by_signed_webhooks_and_its_composite_downloads(portal, tmp_path):
    creds = portal.create_project("Contract")
    with WebhookReceiver() as receiver:
        out = portal.manage("webhook", "configure", creds["APP_ID"], "--url", receiver.url).stdout
        secret = dict(line.split("=", 1) for line in out.split() if "=" in line)["WEBHOOK_SECRET"]
        base, api = portal.public_url, (creds["APP_ID"], creds["APP_KEY"])

        room = requests.post(
            f"{base}/video/v2/rooms", auth=api, timeout=30,
            json={"name": "Contract", "owner_ref": "x", "settings": {"auto_recording": True},
                  "sip": {"enabled": False}},
        )  # fmt: skip
        assert room.json()["result"] == 0
        room_id = room.json()["room"]["room_id"]
        start = requests.post(f"{base}/ingest/v1/rooms/{room_id}/sessions", auth=api, timeout=30)
        conf_num = start.json()["conf_num"]
        for index, seconds in enumerate(SECONDS):
            media = tmp_path / f"p{index}.mp4"
            generate_participant_media(media, name=f"P{index}", seconds=seconds, index=index,
                                       width=320, height=180)  # fmt: skip
            with open(media, "rb") as fh:
                upload = requests.post(
                    f"{base}/ingest/v1/sessions/{conf_num}/files", auth=api, timeout=60,
                    data={"type": "individual", "participant": f"P{index}"},
                    files={"file": (media.name, fh, "video/mp4")},
                )  # fmt: skip
            assert upload.json()["result"] == 0, upload.text
        ended = time.monotonic()
        assert requests.post(f"{base}/ingest/v1/sessions/{conf_num}/end", auth=api,
                             timeout=30).json()["result"] == 0  # fmt: skip

        events: dict[str, dict] = {}
        while time.monotonic() - ended < 60 and not {"recording", "transcoded"} <= set(events):
            for request in receiver.requests:
                payload = receiver.verify(secret, request)  # raises unless the signature holds
                events[payload["type"]] = payload
            time.sleep(0.5)
        assert {"recording", "transcoded"} <= set(events), f"got {sorted(events)} in 60 s"

    # What the third-party webhook consumer does first on every event: the room's CDR.
    cdr = requests.get(f"{base}/video/v2/cdr/room/{room_id}", auth=api, timeout=30).json()
    assert cdr["result"] == 0
    assert sorted(r["user"]["name"] for r in cdr["cdr"]) == ["P0", "P1", "P2"]
    assert all(isinstance(event["trans_date"], int) for event in events.values())
    transcoded = events["transcoded"]
    assert (transcoded["app_id"], transcoded["room_id"], transcoded["conf_num"]) == (
        creds["APP_ID"], room_id, conf_num,
    )  # fmt: skip
    assert len(events["recording"]["recording"]) == 3
    assert all(isinstance(url, str) for url in events["recording"]["recording"])
    [composite] = transcoded["files"]
    assert transcoded["recording"] == composite["url"] and transcoded["file_size"] == composite["size"]
    rec = (creds["RECORDING_USERNAME"], creds["RECORDING_PASSWORD"])
    assert requests.get(composite["url"], timeout=30).status_code == 403
    download = tmp_path / "composite.mp4"
    with requests.get(composite["url"], auth=rec, stream=True, timeout=60) as response:
        assert response.status_code == 200
        with open(download, "wb") as fh:
            for chunk in response.iter_content(1 << 20):
                fh.write(chunk)
    assert download.stat().st_size == composite["size"]
    assert probe(download).duration == pytest.approx(max(SECONDS), abs=1.0)
