"""Debian's nginx with the documented config (deploy/nginx.conf.template) in
front of gunicorn: Basic auth, Range and X-Accel-Redirect serving of a
recording uploaded through the ingest API."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import string
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

from tests.servers.portal import ROOT, PortalProcesses, free_port, wait_for_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack():
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "Debian's nginx is missing: `make test` installs it"
    portal = PortalProcesses(extra_env={"RECORDINGS_X_ACCEL_PREFIX": "/_protected"})
    nginx_port = free_port()
    # Links and file URLs name nginx, the public entry point.
    portal.env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{nginx_port}"
    portal.setup()
    credentials = portal.create_project()
    gunicorn_port = free_port()
    portal.start_web(bind_port=gunicorn_port)

    run_dir = Path(tempfile.mkdtemp(prefix="nginx-"))
    template = string.Template((ROOT / "deploy" / "nginx.conf.template").read_text())
    conf = template.safe_substitute(
        NGINX_RUN_DIR=str(run_dir),
        GUNICORN_ADDR=f"127.0.0.1:{gunicorn_port}",
        NGINX_LISTEN=f"127.0.0.1:{nginx_port}",
        STATIC_ROOT=str(portal.data_dir / "static"),
        RECORDINGS_ROOT=str(portal.data_dir / "recordings"),
    )
    # The test runs as root; nginx workers must be able to read DATA_DIR.
    conf = ("user root;\n" if os.geteuid() == 0 else "") + conf
    (run_dir / "nginx.conf").write_text(conf)
    proc = subprocess.Popen(
        [nginx, "-e", str(run_dir / "error.log"), "-p", str(run_dir), "-c",
         str(run_dir / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    wait_for_port(nginx_port)
    yield portal, f"http://127.0.0.1:{nginx_port}", credentials
    proc.terminate()
    proc.wait(timeout=10)
    portal.stop()


def test_a_recording_goes_through_nginx_with_basic_auth_range_and_x_accel(stack, tmp_path):
    portal, base, creds = stack
    api = (creds["APP_ID"], creds["APP_KEY"])
    room = requests.post(f"{base}/video/v2/rooms", json={"name": "nginx"}, auth=api, timeout=30)
    assert room.status_code in (200, 201), room.text
    room_id = room.json()["room"]["room_id"]
    session = requests.post(f"{base}/ingest/v1/rooms/{room_id}/sessions", auth=api, timeout=30)
    conf_num = session.json()["conf_num"]
    # Chat must be JSON: ~3 MB of it, random so a wrong byte range shows.
    body = json.dumps([os.urandom(512).hex() for _ in range(3 * 1024)]).encode()
    upload = requests.post(
        f"{base}/ingest/v1/sessions/{conf_num}/files", auth=api, timeout=60,
        data={"type": "chat"}, files={"file": ("chat.json", body)},
    )  # fmt: skip
    assert upload.status_code in (200, 201), upload.text
    url = f"{base}/recordings/{creds['APP_ID']}/{room_id}/{conf_num}/chat.json"
    rec = (creds["RECORDING_USERNAME"], creds["RECORDING_PASSWORD"])

    assert requests.get(url, timeout=30).status_code == 403
    challenge = requests.get(url, headers={"Accept": "text/html"}, timeout=30)
    assert challenge.status_code == 401 and "Basic" in challenge.headers["WWW-Authenticate"]
    assert requests.get(url, auth=(rec[0], "wrong-password"), timeout=30).status_code == 401

    full = requests.get(url, auth=rec, timeout=30)
    assert full.status_code == 200
    assert hashlib.sha256(full.content).digest() == hashlib.sha256(body).digest()
    # nginx, not Django, produced the body: the internal redirect was followed
    # and the X-Accel header never reaches the client.
    assert full.headers["Server"].startswith("nginx")
    assert "X-Accel-Redirect" not in full.headers

    part = requests.get(url, auth=rec, headers={"Range": "bytes=1000-1999"}, timeout=30)
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(body)}"
    assert part.content == body[1000:2000]


def test_the_internal_location_is_not_reachable_directly(stack):
    _portal, base, creds = stack
    assert requests.get(f"{base}/_protected/{creds['APP_ID']}/", timeout=30).status_code == 404


def test_static_files_are_served_by_nginx(stack):
    _portal, base, _creds = stack
    css = requests.get(f"{base}/static/portal/portal.css", timeout=30)
    assert css.status_code == 200 and css.headers["Server"].startswith("nginx")
