"""Debian's nginx with the documented config (deploy/nginx.conf.template) in
front of gunicorn: Basic auth, Range and X-Accel-Redirect serving of a
recording uploaded through the ingest API; what nginx serves itself (X-Accel
bytes, static files) carries the file security headers, and hostile stored
files come out as attachments; and the abuse it must absorb (lockouts by
address, APP_KEY guessing, slow request bodies, tokens in logs)."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
import requests

from recordings.serving import FILE_SECURITY_HEADERS
from tests.recordings.hostile_files import plant_hostile_files
from tests.servers.nginx import portal_behind_nginx

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack():
    credentials = {}

    def setup(portal):
        credentials.update(portal.create_project())

    with portal_behind_nginx(setup=setup) as (portal, base):
        yield portal, base, credentials


def test_a_recording_goes_through_nginx_with_basic_auth_range_and_x_accel(stack, tmp_path):
    portal, base, creds = stack
    api = (creds["APP_ID"], creds["APP_KEY"])
    room = requests.post(f"{base}/video/v2/rooms", json={"name": "nginx"}, auth=api, timeout=30)
    assert room.status_code in (200, 201), room.text
    room_id = room.json()["room"]["room_id"]
    session = requests.post(f"{base}/ingest/v1/rooms/{room_id}/sessions", auth=api, timeout=30)
    conf_num = session.json()["conf_num"]
    # A chat transcript must be JSON; 3 MB of it, so nginx streams several chunks.
    body = json.dumps([{"message": os.urandom(512).hex()} for _ in range(3000)]).encode()
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

    # Every answer, whether nginx (X-Accel bytes) or Django (challenges) wrote it.
    answers = [full, part, challenge, requests.get(url, timeout=30)]
    answers.append(requests.get(url, auth=rec, headers={"Range": "bytes=99999999-"}, timeout=30))
    assert answers[-1].status_code == 416
    for answer in answers:
        assert_served_as_data(answer)
    assert full.headers["Content-Disposition"] == "attachment; filename*=UTF-8''chat.json"


def test_the_internal_location_is_not_reachable_directly(stack):
    _portal, base, creds = stack
    assert requests.get(f"{base}/_protected/{creds['APP_ID']}/", timeout=30).status_code == 404


def test_static_files_are_served_by_nginx(stack):
    _portal, base, _creds = stack
    css = requests.get(f"{base}/static/portal/portal.css", timeout=30)
    assert css.status_code == 200 and css.headers["Server"].startswith("nginx")


def assert_served_as_data(response) -> None:
    # nginx 1.22 writes add_header ... always twice on the error page it makes
    # for an unsatisfiable range (416): identical copies, which browsers treat
    # as one (two equal CSPs enforce the same policy).
    for name, value in FILE_SECURITY_HEADERS.items():
        sent = response.raw.headers.getlist(name)
        assert sent and set(sent) == {value}, (response.status_code, name, response.headers)


def test_static_files_are_served_as_data(stack):
    _portal, base, _creds = stack
    for path in ("/static/portal/portal.css", "/static/no-such-file.html"):
        response = requests.get(f"{base}{path}", timeout=30)
        assert response.headers["Server"].startswith("nginx")
        assert_served_as_data(response)


@pytest.fixture(scope="module")
def planted(stack):
    portal, base, creds = stack
    return plant_hostile_files(portal, creds["APP_ID"], sink=base)


@pytest.mark.parametrize("via", ["recordings", "dl", "dl-inline"])
def test_hostile_stored_files_come_out_of_nginx_as_attachments(stack, planted, via):
    _portal, base, creds = stack
    rec = (creds["RECORDING_USERNAME"], creds["RECORDING_PASSWORD"])
    for name in ("evil.html", "evil.js"):
        file = planted[name]
        if via == "recordings":
            response = requests.get(base + file.path, auth=rec, timeout=30)
        else:
            query = "?inline=1" if via == "dl-inline" else ""
            response = requests.get(base + file.link + query, timeout=30)
        assert response.status_code == 200, response.text
        assert response.headers["Server"].startswith("nginx")
        assert b"pwned" in response.content  # the bytes themselves, from disk
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["Content-Disposition"].startswith("attachment;")
        assert_served_as_data(response)


def test_a_row_that_lies_about_its_type_is_still_sandboxed_behind_nginx(stack, planted):
    _portal, base, _creds = stack
    liar = planted["evil-as-video.mp4"]
    response = requests.get(f"{base}{liar.link}?inline=1", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "video/mp4"
    assert response.headers["Content-Disposition"].startswith("inline;")
    assert_served_as_data(response)


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
