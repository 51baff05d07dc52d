"""Archive API: the four routes, the EnableX shape, pages, errors, expiry."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from projects.actions.projects import do_create_project
from tests.recordings.seed import add_file, full_session, make_room, make_session

DAY = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)


def auth(app_id: str, app_key: str) -> dict:
    token = base64.b64encode(f"{app_id}:{app_key}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


@pytest.fixture
def api(client, world):
    headers = auth(world.app_id, world.created.app_key)

    def get(path: str, **params):
        return client.get(f"/video/v2/archive/{path}", params, **headers)

    return get


@pytest.fixture
def room(world):
    return make_room(world.project)


def test_period_lists_sessions_in_the_enablex_shape(api, world, room, settings):
    session, files = full_session(room, started_at=DAY)
    make_session(room, started_at=DAY + timedelta(days=30))
    response = api("period/2026-03-14/2026-03-14")
    assert response.status_code == 200
    body = response.json()
    assert body["result"] == 0
    assert body["total"] == 1 and body["next"] is None
    (entry,) = body["archive"]
    assert {"_id", "trans_date", "conf_num", "app_id", "room_id", "recording", "transcoded",
            "live_recording", "chatdata", "metadata"} <= set(entry)  # fmt: skip
    assert entry["conf_num"] == session.conf_num
    assert entry["app_id"] == world.app_id and entry["room_id"] == room.room_id
    (individual,) = entry["recording"]
    assert individual["url"] == files["individual"].public_url
    assert individual["url"].startswith(settings.PUBLIC_BASE_URL + "/recordings/")
    assert individual["name"] == "alice.mp4"
    assert individual["size"] == files["individual"].size
    assert individual["sha256"] == files["individual"].sha256
    assert individual["expired"] is False
    assert entry["transcoded"][0]["name"] == "composite.mp4"
    assert entry["live_recording"][0]["name"] == "live.mp4"
    assert entry["chatdata"] == files["chat"].public_url
    assert entry["metadata"] == files["metadata"].public_url


def test_the_urls_serve_with_recording_credentials(api, client, world, room):
    full_session(room, started_at=DAY)
    url = api("period/2026-03-01/2026-03-31").json()["archive"][0]["recording"][0]["url"]
    path = url.removeprefix("http://127.0.0.1:8000")
    creds = auth(world.created.recording_username, world.created.recording_password)
    assert client.get(path, **creds).status_code == 200


def test_room_routes_and_conf_num(api, world, room):
    other_room = make_room(world.project, "Other")
    mine = make_session(room, started_at=DAY)
    theirs = make_session(other_room, started_at=DAY)
    late = make_session(room, started_at=DAY + timedelta(days=40))
    conf_nums = lambda r: [e["conf_num"] for e in r.json()["archive"]]  # noqa: E731
    assert conf_nums(api(f"room/{room.room_id}")) == [mine.conf_num, late.conf_num]
    assert conf_nums(api(f"room/{room.room_id}/period/2026-03-01/2026-03-31")) == [mine.conf_num]
    assert conf_nums(api(f"conf_num/{theirs.conf_num}")) == [theirs.conf_num]
    assert api(f"room/{room.room_id}/").status_code == 200


@pytest.mark.parametrize(
    "path",
    ["period/2026-03-31/2026-03-01", "period/2026-02-30/2026-03-01", "period/yesterday/2026-03-01",
     "period/2026-3-1/2026-03-02"],
)  # fmt: skip
def test_bad_dates_are_400_with_a_result_code(api, room, path):
    response = api(path)
    assert response.status_code == 400
    body = response.json()
    assert body["result"] != 0
    assert "date" in body["error"]


def test_another_projects_room_and_session_are_404(api, world):
    other = do_create_project("Beta", acting_user=world.charlie)
    their_room = make_room(other.project)
    their_session = make_session(their_room, started_at=DAY)
    for path in (f"room/{their_room.room_id}", f"conf_num/{their_session.conf_num}"):
        response = api(path)
        assert response.status_code == 404
        assert response.json()["result"] != 0


def test_it_needs_app_credentials(client, world):
    response = client.get("/video/v2/archive/period/2026-03-01/2026-03-31")
    assert response.status_code in (401, 403)
    assert response.json()["result"] != 0
    wrong = auth(world.app_id, "wrong")
    response = client.get("/video/v2/archive/period/2026-03-01/2026-03-31", **wrong)
    assert response.status_code == 401


def test_expired_files_show_as_expired(api, room):
    _, files = full_session(room, started_at=DAY)
    now = timezone.now()
    for rf in (files["individual"], files["chat"]):
        rf.expired_at = now
        rf.save(update_fields=["expired_at"])
    entry = api("period/2026-03-14/2026-03-14").json()["archive"][0]
    assert entry["recording"][0] == {**entry["recording"][0], "url": None, "expired": True}
    # Clients type chatdata as a string: "" once the file is gone.
    assert entry["chatdata"] == ""
    assert entry["transcoded"][0]["expired"] is False


def test_large_periods_are_paginated_without_breaking_the_shape(api, room):
    for i in range(7):
        session = make_session(room, started_at=DAY + timedelta(hours=i))
        add_file(session, "individual", "a.mp4", b"x")
    first = api("period/2026-03-14/2026-03-14", per_page=3).json()
    assert first["total"] == 7 and len(first["archive"]) == 3
    assert "page=2" in first["next"]
    third = api("period/2026-03-14/2026-03-14", per_page=3, page=3).json()
    assert len(third["archive"]) == 1 and third["next"] is None
    assert api("period/2026-03-14/2026-03-14", per_page=0).status_code == 400


def test_the_query_count_does_not_grow_with_the_page_size(client, world, room):
    for i in range(100):
        session = make_session(room, started_at=DAY + timedelta(minutes=i))
        add_file(session, "individual", "a.mp4", b"x")
        add_file(session, "chat", "chat.json", b"[]")
    headers = auth(world.app_id, world.created.app_key)
    # The first use of a key costs a fixed few queries (failure throttle and
    # the shared memory of wrong keys); then the process remembers it.
    client.get("/video/v2/rooms", **headers)
    counts = []
    for per_page in (25, 100):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(
                "/video/v2/archive/period/2026-03-01/2026-03-31", {"per_page": per_page}, **headers
            )
        assert len(response.json()["archive"]) == per_page
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 5, counts


def test_the_schema_documents_the_archive_routes(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    text = schema.content.decode()
    for op in ("archive_period", "archive_room", "archive_room_period", "archive_conf_num"):
        assert op in text
