"""Video API v2 rooms: the EnableX sample server's calls and the error envelope."""

from __future__ import annotations

import base64
import json

import pytest
from django.core.management import call_command

from projects.models import Room
from projects.services import do_create_project
from recordings.models import Session

pytestmark = pytest.mark.django_db


def basic(app_id: str, app_key: str) -> dict:
    token = base64.b64encode(f"{app_id}:{app_key}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


@pytest.fixture
def api(client, world):
    auth = basic(world.app_id, world.created.app_key)

    def call(method: str, path: str, body=None, raw: str | None = None, **extra):
        kwargs = {**auth, **extra}
        if raw is not None or body is not None:
            kwargs.update(data=raw if raw is not None else json.dumps(body))
            kwargs["content_type"] = "application/json"
        return getattr(client, method)(f"/video/v2{path}", **kwargs)

    return call


ENABLEX_SAMPLE = {
    "name": "Sample Room",
    "owner_ref": "xyz",
    "settings": {
        "description": "Sample",
        "mode": "group",
        "scheduled": False,
        "adhoc": False,
        "participants": "3",
        "moderators": "1",
        "quality": "SD",
        "auto_recording": False,
    },
    "sip": {"enabled": False},
}


def test_the_enablex_sample_server_can_create_a_room_and_read_its_id(api, world):
    response = api("post", "/rooms/", ENABLEX_SAMPLE)
    assert response.status_code == 201
    body = response.json()
    assert body["result"] == 0
    room = Room.objects.get(room_id=body["room"]["room_id"])
    assert room.project == world.project
    assert body["room"]["name"] == "Sample Room"
    assert body["room"]["owner_ref"] == "xyz"
    assert body["room"]["settings"]["quality"] == "SD"
    assert body["room"]["created"]


def test_it_lists_rooms_with_pages_and_a_name_filter(api):
    for i in range(3):
        api("post", "/rooms", {"name": f"room {i}"})
    first = api("get", "/rooms?per_page=2").json()
    assert first["result"] == 0 and first["total"] == 3 and len(first["rooms"]) == 2
    assert first["next"].endswith("page=2")
    second = api("get", "/rooms?per_page=2&page=2").json()
    assert len(second["rooms"]) == 1 and second["next"] is None
    named = api("get", "/rooms?name=room%201").json()
    assert [room["name"] for room in named["rooms"]] == ["room 1"]


def test_it_gets_patches_and_deletes_a_room(api):
    room_id = api("post", "/rooms", {"name": "r", "settings": {"mode": "lecture"}}).json()["room"][
        "room_id"
    ]
    assert api("get", f"/rooms/{room_id}").json()["room"]["settings"]["mode"] == "lecture"
    patched = api(
        "patch", f"/rooms/{room_id}", {"name": "r2", "settings": {"auto_recording": True}}
    )
    assert patched.status_code == 200
    settings = patched.json()["room"]["settings"]
    assert settings["mode"] == "lecture" and settings["auto_recording"] is True
    assert patched.json()["room"]["name"] == "r2"
    deleted = api("delete", f"/rooms/{room_id}")
    assert deleted.status_code == 200 and deleted.json()["result"] == 0
    assert api("get", f"/rooms/{room_id}").status_code == 404


def test_invalid_settings_are_400_naming_the_field(api):
    response = api("post", "/rooms", {"name": "r", "settings": {"mode": "party"}})
    assert response.status_code == 400
    body = response.json()
    assert body["result"] != 0
    assert "settings.mode" in body["fields"]
    assert "settings.mode" in body["error"]


def test_a_missing_name_is_400(api):
    response = api("post", "/rooms", {"owner_ref": "x"})
    assert response.status_code == 400
    assert "name" in response.json()["fields"]


def test_malformed_json_is_400_in_the_envelope(api):
    response = api("post", "/rooms", raw="{not json")
    assert response.status_code == 400
    assert response.json()["result"] != 0 and response.json()["error"]


def test_wrong_credentials_are_401_in_the_envelope(client, world):
    response = client.get("/video/v2/rooms", **basic(world.app_id, "wrong"))
    assert response.status_code == 401
    assert response.json()["result"] != 0
    assert response["WWW-Authenticate"].startswith("Basic")
    assert client.get("/video/v2/rooms").status_code == 401


def test_a_room_of_another_project_is_404(api, world):
    other = do_create_project("Other", owner=world.charlie).project
    room = Room.objects.create(project=other, name="theirs")
    for method in ("get", "patch", "delete"):
        response = api(method, f"/rooms/{room.room_id}", {} if method == "patch" else None)
        assert response.status_code == 404, method
        assert response.json()["result"] != 0
    assert Room.objects.filter(pk=room.pk).exists()


def test_a_room_with_sessions_cannot_be_deleted(api, world):
    room_id = api("post", "/rooms", {"name": "r"}).json()["room"]["room_id"]
    room = Room.objects.get(room_id=room_id)
    Session.objects.create(project=world.project, room=room)
    response = api("delete", f"/rooms/{room_id}")
    assert response.status_code == 409
    assert "session" in response.json()["error"]


def test_the_openapi_schema_validates_without_warnings(capsys):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


def test_the_schema_documents_the_error_envelopes(client):
    import yaml  # noqa: PLC0415  (drf-spectacular depends on PyYAML)

    schema = yaml.safe_load(client.get("/api/schema/").content)
    room = schema["paths"]["/video/v2/rooms/{room_id}"]
    assert {"200", "401", "404", "409"} <= set(room["delete"]["responses"])
    upload = schema["paths"]["/ingest/v1/sessions/{conf_num}/files"]["post"]["responses"]
    assert {"201", "400", "401", "404", "409", "413"} <= set(upload)
