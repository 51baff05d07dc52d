"""`make run`'s demo as real processes: setup_demo and fill_demo with the
demo's DELIVERY_LOCAL_ROOTS (DATA_DIR/delivered), then the workers deliver
the demo session into that folder, where a newcomer finds it."""

from __future__ import annotations

import json
import time

import pytest

from tests.servers.portal import PortalProcesses

pytestmark = pytest.mark.slow


def env_lines(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_the_demo_session_is_delivered_to_the_demo_folder():
    portal = PortalProcesses()
    delivered = portal.data_dir / "delivered"
    portal.env["DELIVERY_LOCAL_ROOTS"] = str(delivered)  # what the Makefile's run sets
    try:
        portal.setup()
        demo = env_lines(portal.manage("setup_demo").stdout)
        assert demo["DEMO_DELIVERED_TO"] == str(delivered)
        filled = env_lines(portal.manage("fill_demo", "--seconds", "2").stdout)
        assert filled["DEMO_SESSION"] == "ready"
        portal.start_worker()
        deadline = time.monotonic() + 120
        while not list(delivered.rglob("manifest.json")):
            assert time.monotonic() < deadline, "the demo session was not delivered in 120 s"
            time.sleep(0.5)
        [manifest] = delivered.rglob("manifest.json")
        folder = manifest.parent
        assert folder.name == filled["DEMO_CONF_NUM"]
        names = {p.name for p in folder.iterdir()}
        assert {"transcoded.mp4", "chat.json", "metadata.json", "manifest.json"} <= names
        listed = {f["name"] for f in json.loads(manifest.read_text())["files"]}
        assert listed == names - {"manifest.json"}
        # Running setup_demo again keeps the one destination.
        again = env_lines(portal.manage("setup_demo").stdout)
        assert again["DEMO_DELIVERED_TO"] == str(delivered)
    finally:
        portal.stop()


def test_without_the_demo_setting_no_local_destination_is_made():
    portal = PortalProcesses()
    try:
        portal.setup()
        demo = env_lines(portal.manage("setup_demo").stdout)
        assert demo["DEMO_DELIVERED_TO"] == "none"
        count = portal.manage(
            "shell", "-c", "from delivery.models import DeliveryDestination as D; "
            "print(D.objects.count())",
        ).stdout.split()  # fmt: skip
        assert count[-1] == "0"
    finally:
        portal.stop()
