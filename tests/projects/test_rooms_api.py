"""Video API rooms: the EnableX sample server's calls, EnableX's room fields
and the error envelope."""

from __future__ import annotations

import base64
import json
import re

import pytest
from django.core.management import call_command

from projects.actions.projects import do_create_project
from projects.models import AuditEvent, Room
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
    # EnableX answers 200; its sample servers read only the body.
    assert response.status_code == 200
    body = response.json()
    assert body["result"] == 0
    room = Room.objects.get(room_id=body["room"]["room_id"])
    assert room.project == world.project
    assert body["room"]["name"] == "Sample Room"
    assert body["room"]["owner_ref"] == "xyz"
    assert body["room"]["settings"]["quality"] == "SD"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["room"]["created"])
    assert body["room"]["sip"] == {"enabled": False}


def test_it_lists_rooms_with_pages_and_a_name_filter(api):
    for i in range(3):
        api("post", "/rooms", {"name": f"room {i}"})
    whole = api("get", "/rooms").json()
    assert len(whole["rooms"]) == 3 and whole["next"] is None
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
    assert room_id not in [r["room_id"] for r in api("get", "/rooms").json()["rooms"]]


def test_room_changes_through_the_api_are_audited_as_the_app(api, world):
    room_id = api("post", "/rooms/", ENABLEX_SAMPLE).json()["room"]["room_id"]
    api("patch", f"/rooms/{room_id}", {"name": "Renamed", "settings": {"mode": "lecture"}})
    api("patch", f"/rooms/{room_id}", {})  # nothing changes: nothing to audit
    api("delete", f"/rooms/{room_id}")
    events = AuditEvent.objects.filter(project=world.project, action__startswith="room_")
    rows = [(e.action, e.actor, e.ip_address, e.detail) for e in events.order_by("id")]
    assert rows == [
        ("room_created", None, "127.0.0.1", {"room_id": room_id, "name": "Sample Room"}),
        ("room_changed", None, "127.0.0.1", {"room_id": room_id, "changed": ["name", "settings"]}),
        ("room_deleted", None, "127.0.0.1", {"room_id": room_id, "name": "Renamed"}),
    ]


def test_invalid_settings_are_400_naming_the_field(api):
    response = api("post", "/rooms", {"name": "r", "settings": {"mode": "party"}})
    assert response.status_code == 400
    body = response.json()
    assert body["result"] != 0
    assert "settings.mode" in body["fields"]
    assert "settings.mode" in body["error"] and body["desc"]


def test_a_missing_name_is_400(api):
    response = api("post", "/rooms", {"owner_ref": "x"})
    assert response.status_code == 400
    assert "name" in response.json()["fields"]


def test_malformed_json_is_400_in_the_envelope(api):
    response = api("post", "/rooms", raw="{not json")
    assert response.status_code == 400
    body = response.json()
    assert body["result"] != 0 and body["error"] and body["desc"]
    assert not body["error"].startswith("detail")


def test_wrong_credentials_are_401_in_the_envelope(client, world):
    response = client.get("/video/v2/rooms", **basic(world.app_id, "wrong"))
    assert response.status_code == 401
    assert response.json() == {
        "result": 1002,
        "error": "Invalid APP_ID or APP_KEY",
        "desc": "Send HTTP Basic credentials: the project's APP_ID as user and APP_KEY as password.",
    }
    assert response["WWW-Authenticate"].startswith("Basic")
    assert client.get("/video/v2/rooms").status_code == 401


def test_a_room_of_another_project_is_404(api, world):
    other = do_create_project("Other", acting_user=world.charlie).project
    room = Room.objects.create(project=other, name="theirs")
    for method in ("get", "patch", "delete"):
        response = api(method, f"/rooms/{room.room_id}", {} if method == "patch" else None)
        assert response.status_code == 404, method
        assert response.json()["result"] != 0
    assert Room.objects.filter(pk=room.pk).exists()


def test_a_room_with_a_session_in_progress_cannot_be_deleted(api, world):
    room_id = api("post", "/rooms", {"name": "r"}).json()["room"]["room_id"]
    room = Room.objects.get(room_id=room_id)
    Session.objects.create(project=world.project, room=room, state=Session.State.LIVE)
    response = api("delete", f"/rooms/{room_id}")
    assert response.status_code == 409
    assert "session in progress" in response.json()["error"]
    assert api("get", f"/rooms/{room_id}").status_code == 200


def test_a_room_with_past_sessions_is_deleted_and_its_recordings_stay(api, world, client):
    room_id = api("post", "/rooms", {"name": "r"}).json()["room"]["room_id"]
    room = Room.objects.get(room_id=room_id)
    past = Session.objects.create(project=world.project, room=room, state=Session.State.READY)
    assert api("delete", f"/rooms/{room_id}").status_code == 200
    assert api("get", f"/rooms/{room_id}").status_code == 404
    assert Session.objects.filter(pk=past.pk).exists()
    archive = api("get", f"/archive/room/{room_id}").json()
    assert [e["conf_num"] for e in archive["archive"]] == [past.conf_num]
    by_conf = api("get", f"/archive/conf/{past.conf_num}").json()["archive"]
    assert by_conf[0]["room_id"] == room_id
    # A deleted room takes no new sessions.
    started = client.post(f"/ingest/v1/rooms/{room_id}/sessions",
                          **basic(world.app_id, world.created.app_key))  # fmt: skip
    assert started.status_code == 404
    client.force_login(world.alice)
    report = client.get(f"/projects/{world.app_id}/recordings/")
    assert report.status_code == 200 and past.conf_num in report.content.decode()


def test_owner_ref_is_echoed_as_the_number_or_string_sent(api):
    number = api("post", "/rooms/", {"name": "php", "owner_ref": 482913}).json()["room"]
    assert number["owner_ref"] == 482913
    assert api("get", f"/rooms/{number['room_id']}").json()["room"]["owner_ref"] == 482913
    text = api("post", "/rooms", {"name": "node", "owner_ref": "482913"}).json()["room"]
    assert text["owner_ref"] == "482913"
    changed = api("patch", f"/rooms/{text['room_id']}", {"owner_ref": 7.5}).json()["room"]
    assert changed["owner_ref"] == 7.5
    refused = api("post", "/rooms", {"name": "x", "owner_ref": {"id": 1}})
    assert refused.status_code == 400 and "owner_ref" in refused.json()["fields"]


def test_data_sip_and_role_based_recording_are_kept_and_echoed(api):
    body = {
        "name": "kept",
        "settings": {"role_based_recording": {"moderator": "audiovideo", "participant": "audio"}},
        "sip": {"enabled": True, "pin": 99999},
        "data": {"custom_key": "", "crm": {"id": 42}},
    }
    room = api("post", "/rooms", body).json()["room"]
    assert room["settings"]["role_based_recording"] == body["settings"]["role_based_recording"]
    assert room["sip"] == body["sip"] and room["data"] == body["data"]
    again = api("get", f"/rooms/{room['room_id']}").json()["room"]
    assert (again["sip"], again["data"]) == (body["sip"], body["data"])
    bad = api(
        "post",
        "/rooms",
        {"name": "x", "settings": {"role_based_recording": {"participant": "video"}}},
    )
    assert bad.status_code == 400
    assert "settings.role_based_recording.participant" in bad.json()["fields"]
    too_big = api("post", "/rooms", {"name": "x", "data": {"blob": "x" * 20000}})
    assert too_big.status_code == 400 and "data" in too_big.json()["fields"]


def test_put_changes_a_room_like_patch(api):
    room_id = api("post", "/rooms", {"name": "r", "settings": {"mode": "lecture"}}).json()[
        "room"]["room_id"]  # fmt: skip
    put = api("put", f"/rooms/{room_id}/", {"name": "r2", "data": {"k": 1}})
    assert put.status_code == 200
    room = put.json()["room"]
    assert room["name"] == "r2" and room["data"] == {"k": 1}
    assert room["settings"]["mode"] == "lecture"


def test_the_openapi_schema_validates_without_warnings(capsys):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


def test_the_schema_documents_the_error_envelopes(client):
    import yaml  # noqa: PLC0415  (drf-spectacular depends on PyYAML)

    schema = yaml.safe_load(client.get("/api/schema/").content)
    room = schema["paths"]["/video/v2/rooms/{room_id}"]
    assert {"200", "401", "404", "409"} <= set(room["delete"]["responses"])
    assert {"get", "patch", "put", "delete"} <= set(room)
    assert "desc" in schema["components"]["schemas"]["ErrorEnvelope"]["required"]
    owner_ref = schema["components"]["schemas"]["Room"]["properties"]["owner_ref"]
    assert {"type": "number"} in owner_ref["oneOf"]
    upload = schema["paths"]["/ingest/v1/sessions/{conf_num}/files"]["post"]["responses"]
    assert {"201", "400", "401", "404", "409", "413"} <= set(upload)
