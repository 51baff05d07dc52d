"""EnableX's sample servers' calls against the real portal (gunicorn), sent
as the samples send them: the PHP/Node bodies as raw bytes over http.client,
the Python sample through requests; then the third-party webhook consumer's
CDR call and the JSON errors an HTML page used to break."""

from __future__ import annotations

import http.client
import json

import pytest
import requests

from tests.contract.enablex import NODE_SAMPLE_ROOM, basic_header, php_sample_room
from tests.contract.enablex import python_sample_room as python_room
from tests.servers.portal import PortalProcesses

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def portal():
    processes = PortalProcesses()
    processes.setup()
    processes.start_web()
    yield processes
    processes.stop()


@pytest.fixture(scope="module")
def creds(portal):
    return portal.create_project("Samples")


def raw_call(portal, creds, method: str, path: str, body: bytes | None = None):
    """One request as PHP's curl or Node's https.request makes it."""
    conn = http.client.HTTPConnection("127.0.0.1", portal.port, timeout=30)
    headers = {"Content-Type": "application/json",
               "Authorization": basic_header(creds["APP_ID"], creds["APP_KEY"])}  # fmt: skip
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response, data


def test_the_samples_round_trip_against_gunicorn(portal, creds):
    # PHP: POST /v1/rooms/ with json_encode($room), owner_ref a number.
    response, data = raw_call(portal, creds, "POST", "/v1/rooms/",
                              json.dumps(php_sample_room(482913)).encode())  # fmt: skip
    assert response.status == 200 and response.getheader("Content-Type") == "application/json"
    php = json.loads(data)
    assert php["result"] == 0 and php["room"]["owner_ref"] == 482913
    # Node: POST /v1/rooms/, then GET /v1/rooms/ and /v1/rooms/{id}; it parses the
    # first data chunk as the whole answer, so answers stay small.
    response, data = raw_call(portal, creds, "POST", "/v1/rooms/",
                              json.dumps(NODE_SAMPLE_ROOM).encode())  # fmt: skip
    node = json.loads(data)
    assert node["result"] == 0 and len(data) < 16 * 1024
    response, data = raw_call(portal, creds, "GET", "/v1/rooms/")
    listed = json.loads(data)
    assert {php["room"]["room_id"], node["room"]["room_id"]} <= {r["room_id"] for r in listed["rooms"]}
    response, data = raw_call(portal, creds, "GET", f"/v1/rooms/{node['room']['room_id']}")
    assert json.loads(data)["room"]["owner_ref"] == NODE_SAMPLE_ROOM["owner_ref"]
    # Python: requests.post(ENABLEX_API_URL + '/rooms', headers=..., json=payload)
    api = f"{portal.public_url}/v1"
    headers = {"Content-Type": "application/json",
               "Authorization": basic_header(creds["APP_ID"], creds["APP_KEY"])}  # fmt: skip
    created = requests.post(api + "/rooms", headers=headers, json=python_room("123456"),
                            timeout=30).json()  # fmt: skip
    room_id = created["room"]["room_id"]
    got = requests.get(api + "/rooms/" + room_id, headers=headers, timeout=30).json()
    assert got["room"]["owner_ref"] == "123456"
    # The token call every sample makes next: JSON, not an HTML page.
    response, data = raw_call(portal, creds, "POST", f"/v1/rooms/{room_id}/tokens",
                              b'{"name":"a","role":"participant","user_ref":"a"}')  # fmt: skip
    assert response.status == 404 and json.loads(data)["result"] != 0
    # The webhook consumer's first call: the CDR of the room (no sessions yet).
    cdr = requests.get(f"{portal.public_url}/video/v2/cdr/room/{room_id}", headers=headers,
                       timeout=30)  # fmt: skip
    assert cdr.status_code == 200 and cdr.json() == {
        "result": 0, "cdr": [], "total": 0, "page": 1, "per_page": 1000}  # fmt: skip


def test_errors_are_json_through_gunicorn(portal, creds):
    for method, path, status in [
        ("GET", "/v1/nothing", 404),
        ("GET", "/video/v2/archive/conf_num", 404),
        ("DELETE", "/v1/rooms/", 405),
        ("PATCH", "/video/v2/archive/conf/1", 405),
    ]:
        response, data = raw_call(portal, creds, method, path)
        assert response.status == status, (method, path)
        body = json.loads(data)
        assert set(body) >= {"result", "error", "desc"} and body["result"] != 0
    unauthenticated = requests.get(f"{portal.public_url}/v1/rooms", timeout=30)
    assert unauthenticated.status_code == 401 and unauthenticated.json()["desc"]
