"""Replays, call for call, what EnableX's public sample servers send — the
Python (Django) one-to-one sample, the PHP one-to-one and group samples, the
Node one-to-one sample and the C# sample — and reads back what they read.
The base URL is the only change an integrator makes (``…/v1``)."""

from __future__ import annotations

import json
import random

import pytest

from tests.contract.enablex import (
    NODE_SAMPLE_ROOM,
    basic_header,
    php_sample_room,
    python_sample_room,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def enablex(client, world):
    """POST/GET with the samples' headers: Content-Type JSON and Basic auth."""
    auth = basic_header(world.app_id, world.created.app_key)

    def call(method: str, url: str, raw_body: str | None = None):
        kwargs = {"HTTP_AUTHORIZATION": auth}
        if raw_body is not None:
            kwargs.update(data=raw_body, content_type="application/json")
        response = getattr(client, method)(url, **kwargs)
        # Every sample parses the answer as JSON, whatever the status.
        return response, json.loads(response.content)

    return call


def test_the_python_sample_creates_and_gets_a_room(enablex):
    # requests.post(API_URL + '/rooms', json=payload): no trailing slash.
    random_name = str(random.randint(100000, 999999))
    response, body = enablex("post", "/v1/rooms", json.dumps(python_sample_room(random_name)))
    assert not body.get("error")  # the browser code shows body.error when set
    room_id = body["room"]["room_id"]
    assert body["room"]["owner_ref"] == random_name
    # requests.get(API_URL + '/rooms/' + str(roomId))
    _, got = enablex("get", f"/v1/rooms/{room_id}")
    assert got["result"] == 0 and got["room"]["room_id"] == room_id
    assert got["room"]["settings"]["active_talker"] is True
    # createToken: the portal issues no tokens, and says so in JSON the browser can read.
    _, token = enablex("post", f"/v1/rooms/{room_id}/tokens",
                       json.dumps({"name": "a", "role": "participant", "user_ref": "a"}))  # fmt: skip
    assert token["result"] != 0 and token["error"]


@pytest.mark.parametrize("participants", ["1", "5"])  # one-to-one and group (api/room/multi)
def test_the_php_samples_create_a_room_with_a_numeric_owner_ref(enablex, participants):
    number = random.randint(100000, 999999)
    # httpPost(API_URL . '/rooms/', json_encode($room)): PHP's rand() is a JSON number.
    raw = json.dumps(php_sample_room(number, participants), separators=(",", ":"))
    assert f'"owner_ref":{number}' in raw
    _, body = enablex("post", "/v1/rooms/", raw)
    assert body["result"] == 0
    assert body["room"]["owner_ref"] == number
    # getRoom: httpGet(API_URL . '/rooms/' . $roomId)
    _, got = enablex("get", f"/v1/rooms/{body['room']['room_id']}")
    assert got["room"]["owner_ref"] == number and got["room"]["settings"]["adhoc"] is True


def test_the_node_sample_creates_lists_and_gets_rooms(enablex):
    # options.path = '/v1/rooms/' with JSON.stringify(roomMeta)
    _, created = enablex("post", "/v1/rooms/", json.dumps(NODE_SAMPLE_ROOM))
    # vcxutil: JSON.parse(chunk).result === 0 (a number, not "0")
    assert created["result"] == 0 and isinstance(created["result"], int)
    room_id = created["room"]["room_id"]
    # getAllRooms: GET /v1/rooms/ and the page renders data.rooms
    _, listed = enablex("get", "/v1/rooms/")
    assert listed["result"] == 0 and room_id in [room["room_id"] for room in listed["rooms"]]
    # getRoom: GET /v1/rooms/${roomName}
    _, got = enablex("get", f"/v1/rooms/{room_id}")
    assert got["room"]["name"] == NODE_SAMPLE_ROOM["name"]


def test_the_csharp_sample_creates_a_room_at_api_url_rooms_slash(enablex):
    # $"{API_URL}rooms/" with API_URL "https://api.enablex.io/v1/"; Newtonsoft writes
    # owner_ref as a string and the sip object.
    room = {"name": "Sample Room 42", "owner_ref": "42",
            "settings": {"scheduled": False, "adhoc": True, "moderators": "1",
                         "participants": "1", "duration": "30", "quality": "SD",
                         "auto_recording": False},
            "sip": {"enabled": False}}  # fmt: skip
    _, body = enablex("post", "/v1/rooms/", json.dumps(room))
    assert body["result"] == 0 and body["room"]["sip"] == {"enabled": False}
