"""The systemd units in deploy/systemd: valid for systemd, stopping the way
the portal expects (SIGTERM to the main process, a stop timeout above the
qcluster's own 25 s), and each worker unit's exact ExecStart, run here as a
real process, serves its cluster's queue and stops in time under its KillMode."""

from __future__ import annotations

import configparser
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings

from portal.management.commands.qcluster import STOP_SECONDS
from tests.servers.portal import ROOT, PortalProcesses

pytestmark = pytest.mark.slow

UNITS = ROOT / "deploy" / "systemd"
INSTALL_DIR = "/srv/portal/app"  # where the units expect the checkout


def unit(name: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(UNITS / name)
    return parser["Service"]


def rendered(name: str, folder: Path) -> Path:
    """The unit with this checkout's paths, for systemd-analyze to check."""
    env_file = folder / "portal.env"
    env_file.touch()
    text = (UNITS / name).read_text().replace(INSTALL_DIR, str(ROOT))
    text = text.replace("/etc/portal/portal.env", str(env_file))
    text = text.replace("User=portal", "User=root").replace("Group=portal", "Group=root")
    path = folder / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["portal-web.service", "portal-worker.service",
                                  "portal-processing.service"])  # fmt: skip
def test_the_unit_is_valid_and_stops_the_main_process_with_time_to_spare(name, tmp_path):
    check = subprocess.run(["systemd-analyze", "verify", str(rendered(name, tmp_path))],
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0 and check.stderr == "", check.stderr
    service = unit(name)
    assert service["KillMode"] == "mixed"
    assert int(service["TimeoutStopSec"]) >= STOP_SECONDS + 10
    assert service["WorkingDirectory"] == INSTALL_DIR


@pytest.mark.parametrize("name, queue", [("portal-worker.service", settings.Q_CLUSTER["name"]),
                                         ("portal-processing.service", "processing")])  # fmt: skip
def test_the_worker_units_command_serves_its_queue_and_stops_under_its_kill_mode(name, queue):
    service = unit(name)
    command = shlex.split(service["ExecStart"].replace(f"{INSTALL_DIR}/", f"{ROOT}/"))
    assert command[1:] == ["manage.py", "qcluster"]
    extra = dict(line.split("=", 1) for line in service.get("Environment", "").split() if line)
    portal = PortalProcesses()
    try:
        portal.setup()
        log_path = portal.logs / f"{name}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(command, cwd=ROOT, env={**portal.env, **extra}, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 60
        while f"[{queue}] running." not in log_path.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.3)
        started = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)  # KillMode=mixed: the main process only
        proc.wait(timeout=int(service["TimeoutStopSec"]))
        assert time.monotonic() - started < STOP_SECONDS and proc.returncode == 0
    finally:
        portal.stop()
