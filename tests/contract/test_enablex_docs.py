"""Contract tests written from EnableX's developer documentation: its sample
requests go in unchanged and what comes back has the documented keys and types
— rooms, archive, CDR and the error JSON, under /video/v2/ and /v1/, with and
without a trailing slash."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from projects.models import Room
from recordings.models import Session
from tests.contract.enablex import (
    ARCHIVE_KEYS,
    CDR_KEYS,
    CDR_ROOM_KEYS,
    CDR_USAGE_KEYS,
    CDR_USER_KEYS,
    DOCS_CREATE_ROOM,
    ENABLEX_TIME,
    ERROR_KEYS,
    basic_header,
)
from tests.recordings.seed import VIDEO, add_file, full_session, make_room, make_session

pytestmark = pytest.mark.django_db

DAY = datetime(2026, 3, 14, 9, 30, 15, 123456, tzinfo=UTC)
PREFIXES = ("/video/v2", "/v1")


@pytest.fixture
def api(client, world):
    auth = basic_header(world.app_id, world.created.app_key)

    def call(method: str, path: str, body=None):
        kwargs = {"HTTP_AUTHORIZATION": auth}
        if body is not None:
            kwargs.update(data=json.dumps(body), content_type="application/json")
        return getattr(client, method)(path, **kwargs)

    return call


@pytest.mark.parametrize("prefix", PREFIXES)
def test_the_documented_create_room_request_round_trips(api, prefix):
    response = api("post", f"{prefix}/rooms", DOCS_CREATE_ROOM)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["result"] == 0
    room = body["room"]
    assert room["name"] == DOCS_CREATE_ROOM["name"]
    assert room["owner_ref"] == DOCS_CREATE_ROOM["owner_ref"]
    for key, value in DOCS_CREATE_ROOM["settings"].items():
        assert room["settings"][key] == value, key
    assert room["sip"] == DOCS_CREATE_ROOM["sip"] and room["data"] == DOCS_CREATE_ROOM["data"]
    assert ENABLEX_TIME.fullmatch(room["created"])
    assert Room.objects.filter(room_id=room["room_id"]).exists()
    # Get Room Information answers the same room.
    again = api("get", f"{prefix}/rooms/{room['room_id']}").json()
    assert again == {"result": 0, "room": room}


def test_delete_a_room_answers_result_0(api):
    room_id = api("post", "/v1/rooms", DOCS_CREATE_ROOM).json()["room"]["room_id"]
    deleted = api("delete", f"/video/v2/rooms/{room_id}")
    assert deleted.status_code == 200 and deleted.json()["result"] == 0


def test_the_room_list_is_the_whole_answer_up_to_the_cap_in_constant_queries(api, world):
    Room.objects.bulk_create(Room(project=world.project, name=f"r{i}") for i in range(1001))
    # The first use of a key costs a fixed few queries (failure throttle and
    # the shared memory of wrong keys); then the process remembers it.
    api("get", "/v1/rooms/1")
    counts = []
    for path in ("/v1/rooms/", "/v1/rooms?page=2", "/v1/rooms?per_page=10"):
        with CaptureQueriesContext(connection) as queries:
            body = api("get", path).json()
        counts.append(len(queries))
        assert body["result"] == 0 and body["total"] == 1001
    assert len(api("get", "/v1/rooms/").json()["rooms"]) == 1000
    assert len(api("get", "/v1/rooms?page=2").json()["rooms"]) == 1
    assert len(set(counts)) == 1, counts


@pytest.fixture
def recorded(world):
    room = make_room(world.project)
    session, files = full_session(room, started_at=DAY, ended_at=DAY + timedelta(seconds=65))
    files["bob"] = add_file(session, "individual", "bob.mp4", VIDEO, participant="bob")
    bare = make_session(room, started_at=DAY + timedelta(hours=1))  # no chat, no metadata
    add_file(bare, "individual", "carol.mp4", VIDEO, participant="carol")
    return room, session, files, bare


def archive_paths(room_id: str, conf_num: str) -> list[str]:
    return [
        "archive/period/2026-03-14/2026-03-14",
        f"archive/room/{room_id}",
        f"archive/room-period/{room_id}/2026-03-14/2026-03-14",
        f"archive/room-period/{room_id}/period/2026-03-14/2026-03-14",
        f"archive/room/{room_id}/period/2026-03-14/2026-03-14",
        f"archive/conf/{conf_num}",
        f"archive/conf_num/{conf_num}",
    ]


def test_every_archive_route_answers_the_documented_shape(api, world, recorded):
    room, session, files, bare = recorded
    for prefix in PREFIXES:
        for route in archive_paths(room.room_id, session.conf_num):
            for slash in ("", "/"):
                response = api("get", f"{prefix}/{route}{slash}")
                assert response.status_code == 200, (prefix, route, slash, response.content)
                body = response.json()
                assert body["result"] == 0
                entry = next(e for e in body["archive"] if e["conf_num"] == session.conf_num)
                assert ARCHIVE_KEYS <= set(entry)
                assert ENABLEX_TIME.fullmatch(entry["trans_date"])
                assert (entry["app_id"], entry["room_id"]) == (world.app_id, room.room_id)
                assert {r["url"] for r in entry["recording"]} == {
                    files["individual"].public_url, files["bob"].public_url}  # fmt: skip
                assert entry["transcoded"][0]["url"] == files["transcoded"].public_url
                assert entry["chatdata"] == files["chat"].public_url
                assert entry["metadata"] == files["metadata"].public_url
    by_room = api("get", f"/v1/archive/room/{room.room_id}").json()["archive"]
    [without] = [e for e in by_room if e["conf_num"] == bare.conf_num]
    # Clients type chatdata and metadata as strings.
    assert without["chatdata"] == "" and without["metadata"] == ""


def test_every_cdr_route_answers_the_documented_shape(api, world, recorded):
    room, session, files, _bare = recorded
    routes = [
        "cdr/period/2026-03-14/2026-03-14",
        f"cdr/room/{room.room_id}",
        f"cdr/room-period/{room.room_id}/2026-03-14/2026-03-14",
        f"cdr/conf/{session.conf_num}",
    ]
    for prefix in PREFIXES:
        for route in routes:
            for slash in ("", "/"):
                response = api("get", f"{prefix}/{route}{slash}")
                assert response.status_code == 200, (prefix, route, response.content)
                body = response.json()
                assert body["result"] == 0
                records = [r for r in body["cdr"] if r["conf_num"] == session.conf_num]
                assert sorted(r["user"]["name"] for r in records) == ["alice", "bob"]
                for record in records:
                    assert CDR_KEYS <= set(record)
                    assert CDR_ROOM_KEYS <= set(record["room"])
                    assert CDR_USER_KEYS <= set(record["user"])
                    assert CDR_USAGE_KEYS <= set(record["usage"])
                    assert record["app_id"] == world.app_id
                    assert record["room"]["room_id"] == room.room_id
                    assert ENABLEX_TIME.fullmatch(record["room"]["connect_dt"])
                    assert ENABLEX_TIME.fullmatch(record["room"]["disconnect_dt"])
                    assert all(isinstance(v, str) for v in record["published_track"].values())
                alice, bob = sorted(records, key=lambda r: r["user"]["name"])
                # alice is in the metadata log: her role and join time come from it.
                assert alice["user"]["role"] == "moderator"
                assert alice["room"]["connect_dt"] == "2026-03-14T09:30:01.000Z"
                assert alice["room"]["disconnect_dt"] == "2026-03-14T09:31:20.123Z"
                # bob only has a recording: he is in the room for the whole session.
                assert bob["user"]["role"] == ""
                assert bob["room"]["connect_dt"] == "2026-03-14T09:30:15.123Z"
                assert bob["room"]["duration"] == 65.0
    assert api("get", "/video/v2/cdr/conf/nope").status_code == 404
    assert api("get", "/video/v2/cdr/period/2026-03-15/2026-03-14").status_code == 400


def test_archive_and_cdr_answers_cost_the_same_queries_for_3_or_60_sessions(api, world):
    room = make_room(world.project)
    paths = ("/v1/archive/period/2026-03-01/2026-03-31", "/v1/cdr/period/2026-03-01/2026-03-31")
    counts: dict[str, list[int]] = {path: [] for path in paths}
    api("get", "/v1/rooms/1")  # the key's first use (see the room list test)
    for target in (3, 60):
        while Session.objects.count() < target:
            session = make_session(room, started_at=DAY + timedelta(minutes=Session.objects.count()))
            add_file(session, "individual", "a.mp4", b"x", participant="alice")
            add_file(session, "individual", "b.mp4", b"y", participant="bob")
        for path in paths:
            with CaptureQueriesContext(connection) as queries:
                body = api("get", path).json()
            assert body["total"] == target
            counts[path].append(len(queries))
    assert len(api("get", paths[1]).json()["cdr"]) == 120  # two participants each
    assert all(a == b for a, b in counts.values()), counts


def test_the_cdr_reads_a_metadata_log_once_and_survives_a_hostile_one(api, world, settings):
    room = make_room(world.project)
    session = make_session(room, started_at=DAY, ended_at=DAY + timedelta(minutes=2))
    add_file(session, "individual", "a.mp4", b"x", participant="alice")
    log = {"events": [
        {"timestamp": "2026-03-14T09:30:20Z", "event": "user-joined", "participant": "dan",
         "role": "participant"},
        {"timestamp": "2026-03-14T09:30:21Z", "event": "stream-published", "participant": "dan",
         "audio": True, "video": False},
        {"timestamp": "2026-03-14T09:31:20Z", "event": "user-left", "participant": "dan"},
        {"timestamp": "not a time", "event": "user-joined", "participant": "x" * 5000},
        "not an event", {"event": "user-joined", "participant": ["a list"]},
    ]}  # fmt: skip
    metadata = add_file(session, "metadata", "metadata.json", json.dumps(log).encode())
    body = api("get", f"/v1/cdr/conf/{session.conf_num}").json()
    users = {r["user"]["name"]: r for r in body["cdr"]}
    assert set(users) == {"alice", "dan", "x" * 200}
    dan = users["dan"]
    assert dan["room"]["duration"] == 60.0 and dan["user"]["role"] == "participant"
    assert dan["published_track"]["audio"] == "true" and dan["published_track"]["video"] == "false"
    assert dan["usage"]["published_minutes"] == 0.0  # in the log, never recorded
    session.refresh_from_db()
    assert set(session.call_log) == {"dan", "x" * 200}
    # Kept on the session: the log is not read again, even once it is gone.
    (settings.RECORDINGS_ROOT / metadata.storage_path).unlink()
    again = api("get", f"/v1/cdr/conf/{session.conf_num}").json()
    assert again["cdr"] == body["cdr"]
    # A log that is not JSON, or too large, leaves the recordings alone.
    for content in (b"\xff\xfe not json", b" " * (3 * 1024 * 1024)):
        other = make_session(room, started_at=DAY)
        add_file(other, "individual", "a.mp4", b"x", participant="alice")
        add_file(other, "metadata", "metadata.json", content)
        cdr = api("get", f"/v1/cdr/conf/{other.conf_num}").json()["cdr"]
        assert [r["user"]["name"] for r in cdr] == ["alice"]


def assert_error_json(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert ERROR_KEYS <= set(body), body
    assert isinstance(body["result"], int) and body["result"] != 0
    assert body["error"] and body["desc"]
    assert "detail" not in body["error"]
    return body


@pytest.mark.parametrize(
    "path",
    ["/video/v2/nothing", "/v1/rooms/abc/tokens", "/v1/", "/v1", "/ingest/v1/nope", "/v1/cdr"],
)
def test_unknown_routes_under_the_api_prefixes_are_json_404(api, path):
    assert_error_json(api("get", path), 404)
    assert_error_json(api("post", path, {"name": "x"}), 404)


def test_other_paths_keep_the_html_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


def test_wrong_methods_are_json_405_naming_the_method(api):
    body = assert_error_json(api("delete", "/v1/rooms"), 405)
    assert "DELETE" in body["error"]
    assert_error_json(api("post", "/video/v2/archive/conf/1"), 405)
    assert_error_json(api("put", "/video/v2/cdr/room/x/"), 405)


def test_authentication_and_bad_input_are_json_401_and_400(client, api, world):
    assert_error_json(client.get("/v1/rooms"), 401)
    wrong = client.get("/v1/rooms/", HTTP_AUTHORIZATION=basic_header(world.app_id, "nope"))
    assert_error_json(wrong, 401)
    bad = api("post", "/v1/rooms/", {"name": "x", "settings": {"mode": "party"}})
    assert assert_error_json(bad, 400)["fields"] == {"settings.mode": "must be one of group, lecture"}
    raw = client.post("/v1/rooms", data="{nope", content_type="application/json",
                      HTTP_AUTHORIZATION=basic_header(world.app_id, world.created.app_key))  # fmt: skip
    assert_error_json(raw, 400)


def test_a_request_refused_before_any_view_is_json_400_under_the_api_prefix(client):
    assert_error_json(client.get("/v1/rooms", HTTP_HOST="evil.example"), 400)
    page = client.get("/projects/", HTTP_HOST="evil.example")
    assert page.status_code == 400 and page["Content-Type"].startswith("text/html")


@pytest.mark.urls("tests.contract.failing_urls")
def test_a_server_error_under_the_api_prefix_is_json_500(world):
    client = Client(raise_request_exception=False)
    response = client.get("/v1/boom", HTTP_AUTHORIZATION=basic_header(world.app_id, "x"))
    body = assert_error_json(response, 500)
    assert "boom" not in json.dumps(body)  # the exception's words stay in the log
    page = client.get("/boom")
    assert page.status_code == 500 and page["Content-Type"].startswith("text/html")


def test_a_room_with_a_live_session_is_refused_but_past_sessions_do_not_block(api, world):
    room_id = api("post", "/v1/rooms/", copy.deepcopy(DOCS_CREATE_ROOM)).json()["room"]["room_id"]
    room = Room.objects.get(room_id=room_id)
    live = Session.objects.create(project=world.project, room=room)
    assert_error_json(api("delete", f"/v1/rooms/{room_id}"), 409)
    Session.objects.filter(pk=live.pk).update(state=Session.State.READY)
    assert api("delete", f"/v1/rooms/{room_id}").json()["result"] == 0
    assert api("get", f"/v1/archive/conf/{live.conf_num}").json()["archive"][0]["room_id"] == room_id


def test_the_schema_documents_the_new_routes_and_shapes(client):
    import yaml  # noqa: PLC0415  (drf-spectacular depends on PyYAML)

    schema = yaml.safe_load(client.get("/api/schema/").content)
    paths = schema["paths"]
    for path in (
        "/video/v2/archive/room-period/{room_id}/{date_from}/{date_to}",
        "/video/v2/archive/room-period/{room_id}/period/{date_from}/{date_to}",
        "/video/v2/archive/conf/{conf_num}",
        "/video/v2/cdr/room/{room_id}",
        "/video/v2/cdr/period/{date_from}/{date_to}",
        "/video/v2/cdr/room-period/{room_id}/{date_from}/{date_to}",
        "/video/v2/cdr/conf/{conf_num}",
    ):
        assert path in paths, path
    components = schema["components"]["schemas"]
    assert {"room", "user", "usage", "cdr_id"} <= set(components["CdrEntry"]["properties"])
    assert components["ArchiveEntry"]["properties"]["chatdata"]["type"] == "string"
    assert not any(path.startswith("/v1/") for path in paths)  # the alias is not repeated
