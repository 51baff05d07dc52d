"""Debian's nginx with the documented config (deploy/nginx.conf.template) in
front of gunicorn: Basic auth, Range and X-Accel-Redirect serving of a
recording uploaded through the ingest API; and the abuse it must absorb
(lockouts by address, APP_KEY guessing, slow request bodies, tokens in logs)."""

from __future__ import annotations

import hashlib
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
    portal.nginx_run_dir = run_dir  # the abuse tests read nginx's access log
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
    body = os.urandom(3 * 1024 * 1024 + 17)
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


# --- abuse: lockouts, slow clients, leaks (issue 14) ---------------------------------


class _FromAddress(requests.adapters.HTTPAdapter):
    """Connect from another loopback address (127.0.0.0/8 is all local on
    Linux), so nginx sees a different client, as on the internet."""

    def __init__(self, source: str):
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


def _browser_from(address: str) -> requests.Session:
    browser = requests.Session()
    browser.mount("http://", _FromAddress(address))
    return browser


def _log_in(browser: requests.Session, base: str, username: str, password: str, **headers):
    import re

    page = browser.get(f"{base}/accounts/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return browser.post(
        f"{base}/accounts/login/", timeout=30, allow_redirects=False, headers=headers,
        data={"csrfmiddlewaretoken": token, "username": username, "password": password},
    )  # fmt: skip


def test_wrong_passwords_lock_out_only_the_address_that_sent_them(stack):
    _portal, base, _creds = stack
    attacker, user = _browser_from("127.0.0.2"), _browser_from("127.0.0.3")
    # A forged X-Real-IP is overwritten by nginx: the attacker cannot pretend
    # to be someone else, nor spread his failures over invented addresses.
    statuses = [
        _log_in(attacker, base, "ops", f"wrong-{n}", **{"X-Real-IP": f"10.9.8.{n}"}).status_code
        for n in range(5)  # AXES_FAILURE_LIMIT
    ]
    assert statuses == [200, 200, 200, 200, 429]  # the form again, then locked
    locked = _log_in(attacker, base, "ops", "ops-password-123")
    assert locked.status_code == 429
    # The named user, from her own address, is not locked out.
    assert _log_in(user, base, "ops", "ops-password-123").status_code == 302


def test_wrong_app_keys_are_throttled_per_app_id_and_address(stack):
    _portal, base, creds = stack
    prober, server = _browser_from("127.0.0.4"), _browser_from("127.0.0.5")
    url = f"{base}/video/v2/rooms"
    for attempt in range(10):  # API_AUTH_FAILURE_LIMIT
        wrong = prober.get(url, auth=(creds["APP_ID"], f"guess-{attempt}"), timeout=30)
        assert wrong.status_code == 401, wrong.text
    refused = prober.get(url, auth=(creds["APP_ID"], "guess-10"), timeout=30)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.json()["result"] == 1029 and "Too many failed APP_KEY" in refused.json()["error"]
    # The media server at another address keeps working.
    assert server.get(url, auth=(creds["APP_ID"], creds["APP_KEY"]), timeout=30).status_code == 200


def _portal_answers_while_bodies_trickle(base: str, head: bytes) -> None:
    """20 raw sockets send ``head`` (request line, headers, a first byte of
    body) and then one byte a second each; meanwhile the login page must keep
    answering within seconds."""
    import socket
    import threading
    import time

    host, port = base.removeprefix("http://").split(":")
    stop = threading.Event()
    sockets = []
    for _ in range(20):
        sock = socket.create_connection((host, int(port)), timeout=30)
        sock.sendall(head)
        sockets.append(sock)

    def trickle():
        while not stop.wait(1.0):
            for sock in sockets:
                try:
                    sock.sendall(b"a")
                except OSError:
                    pass

    dripper = threading.Thread(target=trickle, daemon=True)
    dripper.start()
    try:
        time.sleep(3)  # every slow body has reached nginx (and, unbuffered, gunicorn)
        for _ in range(3):
            started = time.monotonic()
            page = requests.get(f"{base}/accounts/login/", timeout=20)
            assert page.status_code == 200
            assert time.monotonic() - started < 10, "the portal stalled behind slow bodies"
    finally:
        stop.set()
        dripper.join()
        for sock in sockets:
            sock.close()


def test_twenty_slow_request_bodies_do_not_stop_the_portal(stack):
    _portal, base, _creds = stack
    # With a CSRF cookie (anyone gets one from the login page) Django reads
    # the form body before answering, so an unbuffered slow body holds a
    # gunicorn thread for as long as the client likes.
    cookie = requests.get(f"{base}/accounts/login/", timeout=30).cookies["csrftoken"]
    _portal_answers_while_bodies_trickle(
        base,
        b"POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Cookie: csrftoken=" + cookie.encode() + b"\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 100000\r\n\r\nusername=a",
    )


def test_slow_anonymous_uploads_to_the_one_unbuffered_location_do_not_stop_it(stack):
    # The ingest upload location streams bodies to gunicorn; without the
    # project's APP_KEY the answer (401) comes before the body is read, and
    # nginx then drops the rest instead of feeding it to gunicorn.
    _portal, base, _creds = stack
    _portal_answers_while_bodies_trickle(
        base,
        b"POST /ingest/v1/sessions/123456/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=xyz\r\n"
        b"Content-Length: 100000000\r\n\r\n-",
    )


def test_download_tokens_never_reach_the_access_logs(stack):
    import time

    portal, base, _creds = stack
    token = "WzQyXQ:1tSecretTokenPart:AbCdEfGhSignatureNotForLogs"
    answer = requests.get(
        f"{base}/dl/{token}?inline=1", timeout=30,
        headers={"Referer": f"{base}/dl/{token}"},
    )  # fmt: skip
    assert answer.status_code in (400, 404, 410)
    time.sleep(1)  # both servers write their line after answering
    nginx_log = (portal.nginx_run_dir / "access.log").read_text()
    gunicorn_log = (portal.logs / "access.log").read_text()
    for log in (nginx_log, gunicorn_log):
        assert "/dl/[redacted]" in log
        assert "SecretTokenPart" not in log and "SignatureNotForLogs" not in log
    # Nor the portal's own log, where Django reports the refused link.
    web_log = (portal.logs / "web.log").read_text()
    assert "Bad Request: /dl/[redacted]" in web_log and "SecretTokenPart" not in web_log
