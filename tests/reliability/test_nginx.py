"""Debian's nginx with the documented config (deploy/nginx.conf.template) in
front of gunicorn: Basic auth, Range and X-Accel-Redirect serving of a
recording uploaded through the ingest API; what nginx serves itself (X-Accel
bytes, static files) carries the file security headers, and hostile stored
files come out as attachments."""

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
