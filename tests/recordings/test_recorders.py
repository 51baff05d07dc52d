"""Recorder slots and the waiting queue of live recording and streaming, in
one process (the codes against real gunicorn + qcluster processes, and the
race between processes on PostgreSQL, are test_recorders_processes.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from projects.actions.projects import do_create_project
from projects.models import Room
from recordings import tasks
from recordings.models import RecorderRequest, Session
from webhooks.models import WebhookMessage

from .ingest_client import Ingest, enable_webhook

pytestmark = pytest.mark.django_db
KEY = "live_sk_7f3a9c0e51d24b8f"
RTMP = f"rtmps://live.example.com:443/app/{KEY}"
LIVE = "live-recording"


class Client(Ingest):
    def get(self, conf_num: str) -> dict:
        response = self.client.get(f"/ingest/v1/sessions/{conf_num}", **self.auth)
        assert response.status_code == 200, response.content
        return response.json()

    def start(self, room: Room) -> str:  # type: ignore[override]
        return super().start(room)

    def begin(self, conf_num: str, what: str = LIVE, config=None):
        body = {"role": "moderator"}
        if what == "streaming":
            body["config"] = config or {"rtmp_url": RTMP}
        elif config is not None:
            body["config"] = config
        return self.post(f"/sessions/{conf_num}/{what}/start", body)

    def halt(self, conf_num: str, what: str = LIVE):
        return self.post(f"/sessions/{conf_num}/{what}/stop", {"role": "moderator"})


@pytest.fixture(autouse=True)
def one_slot(settings):
    settings.LIVE_RECORDING_SLOTS = 1
    settings.LIVE_RECORDING_MAX_WAIT_SECONDS = 600


@pytest.fixture
def api(client, world) -> Client:
    enable_webhook(world.project)
    return Client(client, world.app_id, world.created.app_key)


@pytest.fixture
def room(world) -> Room:
    return Room.objects.create(project=world.project, name="stage")


def sessions(api: Client, room: Room, count: int) -> list[str]:
    return [api.start(room) for _ in range(count)]


def states(api: Client, conf_num: str) -> tuple[dict, dict]:
    body = api.get(conf_num)
    return body["live_recording"], body["streaming"]


def events() -> list[dict]:
    return [
        m.payload
        for m in WebhookMessage.objects.filter(event_type="recording_state").order_by("pk")
    ]


def test_a_start_with_a_free_slot_runs_at_once(api, room):
    [conf] = sessions(api, room, 1)
    response = api.begin(conf)
    assert response.status_code == 200 and response.json()["result"] == 0
    assert response.json()["live_recording"] == {"state": "on", "position": None, "code": None}
    assert api.get(conf)["streaming"] == {"state": "off", "position": None, "code": None}


def test_without_a_free_slot_starts_wait_in_order_with_the_reference_codes(api, room):
    first, second, third = sessions(api, room, 3)
    assert api.begin(first).status_code == 200
    live = api.begin(second)
    assert live.status_code == 202
    assert live.json()["result"] == 7207 and live.json()["position"] == 1
    assert live.json()["msg"] == "Live Recording request is in waiting, will be started soon"
    stream = api.begin(third, "streaming")
    assert stream.status_code == 202
    assert stream.json()["result"] == 7104 and stream.json()["position"] == 2
    assert stream.json()["msg"] == "Streaming request is in waiting, will be started soon"
    assert states(api, second)[0] == {"state": "waiting", "position": 1, "code": 7207}
    assert states(api, third)[1] == {"state": "waiting", "position": 2, "code": 7104}


def test_a_repeated_start_while_waiting_is_7208_or_7105_with_the_position(api, room):
    first, second = sessions(api, room, 2)
    api.begin(first)
    api.begin(second)
    api.begin(second, "streaming")
    again = api.begin(second)
    assert again.status_code == 409
    assert again.json() == {
        "result": 7208, "error": "Last live Recording request is in waiting", "position": 1,
    }  # fmt: skip
    again = api.begin(second, "streaming")
    assert again.status_code == 409 and again.json()["result"] == 7105
    assert again.json()["position"] == 2
    assert RecorderRequest.objects.filter(state="waiting").count() == 2


def test_a_stop_while_waiting_removes_the_request_with_7039_or_7046(api, room):
    first, second, third = sessions(api, room, 3)
    api.begin(first)
    api.begin(second, "streaming")
    api.begin(third)
    removed = api.halt(second, "streaming")
    assert removed.status_code == 200
    assert removed.json()["result"] == 7046
    assert removed.json()["streaming"]["state"] == "off"
    assert "removed the request from waiting" in removed.json()["msg"]
    assert states(api, third)[0]["position"] == 1  # moved up
    removed = api.halt(third)
    assert removed.status_code == 200 and removed.json()["result"] == 7039
    assert not RecorderRequest.objects.filter(state="waiting").exists()
    # Removed means removed: the slot freeing later starts nobody.
    assert api.halt(first).json()["result"] == 0
    assert states(api, second)[1]["state"] == states(api, third)[0]["state"] == "off"


def test_when_the_slot_frees_the_oldest_waiting_request_starts(api, room):
    first, second, third = sessions(api, room, 3)
    api.begin(first)
    api.begin(second, "streaming")
    api.begin(third)
    assert api.halt(first).json()["result"] == 0
    assert states(api, second)[1] == {"state": "on", "position": None, "code": None}
    assert states(api, third)[0] == {"state": "waiting", "position": 1, "code": 7207}
    assert api.end(second).status_code == 200  # the end of a session frees its slot too
    assert states(api, third)[0]["state"] == "on"
    started = RecorderRequest.objects.filter(started_at__isnull=False).order_by("started_at")
    assert [r.session.conf_num for r in started] == [first, second, third]


def test_a_waiting_request_whose_session_ends_fails_with_7080_or_7081(api, room):
    first, second, third = sessions(api, room, 3)
    api.begin(first)
    api.begin(second)
    api.begin(third, "streaming")
    api.end(second)
    api.end(third)
    assert states(api, second)[0] == {"state": "failed", "position": None, "code": 7080}
    assert states(api, third)[1] == {"state": "failed", "position": None, "code": 7081}
    failed = [e for e in events() if e["state"] == "failed"]
    assert [(e["conf_num"], e["kind"], e["code"]) for e in failed] == [
        (second, "live_recording", 7080), (third, "streaming", 7081),
    ]  # fmt: skip
    assert "session ended" in failed[0]["reason"]


def test_a_request_that_waits_too_long_fails_when_read(api, room, settings):
    first, second = sessions(api, room, 2)
    api.begin(first)
    api.begin(second, "streaming")
    with time_machine.travel(timezone.now() + timedelta(seconds=601)):
        assert states(api, second)[1] == {"state": "failed", "position": None, "code": 7081}
        # ... and a start after that may try again (it waits anew).
        assert api.begin(second, "streaming").json()["result"] == 7104


def test_the_schedule_fails_requests_that_wait_too_long(api, room):
    first, second, third = sessions(api, room, 3)
    api.begin(first)
    api.begin(second)
    with time_machine.travel(timezone.now() + timedelta(seconds=300)):
        api.begin(third)
    with time_machine.travel(timezone.now() + timedelta(seconds=601)):
        assert tasks.expire_waiting_recorders() == 1
    assert Session.objects.get(conf_num=second).live_recording == "failed"
    assert Session.objects.get(conf_num=third).live_recording == "waiting"
    assert states(api, third)[0]["position"] == 1


def test_slots_are_shared_by_every_project(api, room, client, world):
    other = do_create_project("Other", acting_user=world.charlie)
    theirs = Client(client, other.project.app_id, other.app_key)
    their_room = Room.objects.create(project=other.project, name="theirs")
    [mine] = sessions(api, room, 1)
    assert api.begin(mine).status_code == 200
    [conf] = sessions(theirs, their_room, 1)
    assert theirs.begin(conf, "streaming").json()["result"] == 7104
    # ... yet neither may touch the other's session.
    assert theirs.halt(mine).status_code == 404


def test_an_automatic_live_recording_takes_a_slot_or_waits(api, world):
    auto = Room.objects.create(
        project=world.project,
        name="auto",
        settings={"live_recording": {"auto_recording": True, "url": "https://view.example.com"}},
    )
    first = api.start(auto)
    second = api.start(auto)
    assert states(api, first)[0]["state"] == "on"
    assert states(api, second)[0] == {"state": "waiting", "position": 1, "code": 7207}
    api.halt(first)
    assert states(api, second)[0]["state"] == "on"


@pytest.mark.parametrize(
    "path, before, code",
    [
        ("streaming/start", "starting", 5122),
        ("streaming/start", "on", 5139),
        ("streaming/stop", "off", 5140),
        ("streaming/stop", "failed", 5140),
        ("streaming/stop", "stopping", 5141),
        ("streaming/stop", "starting", 5122),
    ],
)
def test_streaming_has_the_live_recording_state_codes(api, room, path, before, code):
    [conf] = sessions(api, room, 1)
    Session.objects.filter(conf_num=conf).update(streaming=before)
    response = api.post(f"/sessions/{conf}/{path}", {"config": {"rtmp_url": RTMP}})
    assert response.status_code == 409 and response.json()["result"] == code


@pytest.mark.parametrize("path, code", [("start", 5007), ("stop", 5008)])
def test_only_moderators_may_switch_streaming(api, room, path, code):
    [conf] = sessions(api, room, 1)
    body = {"role": "participant", "config": {"rtmp_url": RTMP}}
    response = api.post(f"/sessions/{conf}/streaming/{path}", body)
    assert response.status_code == 403 and response.json()["result"] == code


def test_streaming_is_refused_in_chat_only_rooms(api, world):
    room = Room.objects.create(project=world.project, name="chat", settings={"chat_only": True})
    conf = api.start(room)
    assert api.begin(conf, "streaming").json()["result"] == 5097
    assert api.halt(conf, "streaming").json()["result"] == 5097


def test_an_ended_session_refuses_streaming(api, room):
    [conf] = sessions(api, room, 1)
    api.end(conf)
    assert api.begin(conf, "streaming").status_code == 409


@pytest.mark.parametrize(
    "config, says",
    [
        (None, "rtmp_url is required"),
        ({"rtmp_url": f"https://live.example.com/app/{KEY}"}, "rtmp:// or rtmps://"),
        ({"rtmp_url": f"rtmp://127.0.0.1/app/{KEY}"}, "private, loopback"),
        ({"rtmp_url": f"rtmp://[::1]:1935/app/{KEY}"}, "private, loopback"),
        ({"rtmp_url": f"rtmp://10.1.2.3/app/{KEY}"}, "private, loopback"),
        ({"rtmp_url": f"rtmp://169.254.169.254/app/{KEY}"}, "private, loopback"),
        ({"rtmp_url": f"rtmp://127.1/app/{KEY}"}, "private, loopback"),
        ({"rtmp_url": f"rtmp://2130706433/app/{KEY}"}, "public host"),
        ({"rtmp_url": f"rtmp://localhost/app/{KEY}"}, "public host"),
        ({"rtmp_url": f"rtmp://media.internal/app/{KEY}"}, "not a local one"),
        ({"rtmp_url": f"rtmp://live.example.com:99999/app/{KEY}"}, "host and port"),
        ({"rtmp_url": "rtmp://live.example.com/"}, "stream key"),
        ({"rtmp_url": f"rtmp://live.example.com/app/{KEY} x"}, "spaces"),
        ({"rtmp_url": 5}, "rtmp_url is required"),
        ({"rtmp_url": RTMP, "stream_key": KEY}, "unknown key 'stream_key'"),
        ("rtmp://x", "as an object"),
    ],
)
def test_bad_streaming_targets_are_5138_and_never_echoed(api, room, config, says):
    [conf] = sessions(api, room, 1)
    response = api.post(f"/sessions/{conf}/streaming/start", {"config": config})
    assert response.status_code == 400 and response.json()["result"] == 5138
    assert says in response.json()["error"]
    assert KEY not in response.content.decode()
    assert not RecorderRequest.objects.exists()


def test_the_streaming_target_is_stored_encrypted_and_never_shown(api, room):
    first, second = sessions(api, room, 2)
    api.begin(first)
    started = api.begin(second, "streaming")
    api.halt(first)
    shown = [started.content.decode(), str(api.get(second)), str(events())]
    assert all(KEY not in text for text in shown)
    request = RecorderRequest.objects.get(kind="streaming")
    assert request.config == {"rtmp_url": RTMP}
    with connection.cursor() as cursor:
        cursor.execute("SELECT config FROM recordings_recorderrequest WHERE id = %s", [request.pk])
        [(raw,)] = cursor.fetchall()
    assert KEY not in raw and "rtmp" not in raw


def test_every_change_of_state_is_a_recording_state_webhook(api, world, room):
    first, second = sessions(api, room, 2)
    api.begin(first)
    api.begin(second, "streaming")
    api.halt(first)
    api.halt(second, "streaming")
    seen = [(e["conf_num"], e["kind"], e["state"], e["position"], e["code"]) for e in events()]
    assert seen == [
        (first, "live_recording", "on", None, None),
        (second, "streaming", "waiting", 1, 7104),
        (first, "live_recording", "off", None, None),
        (second, "streaming", "on", None, None),
        (second, "streaming", "off", None, None),
    ]
    payload = events()[0]
    assert payload["app_id"] == world.app_id and payload["room_id"] == room.room_id
    assert isinstance(payload["trans_date"], int)


def test_the_schema_documents_every_queue_code(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]
    base = "/ingest/v1/sessions/{conf_num}"
    operations = {
        what: str(paths[f"{base}/{what}"]["post"]) for what in (
            "live-recording/start", "live-recording/stop", "streaming/start", "streaming/stop",
        )
    }  # fmt: skip
    for code in ("7207", "7208", "7080", "5007", "5097", "5138", "5122", "5139"):
        assert code in operations["live-recording/start"], code
    for code in ("7104", "7105", "7081", "5007", "5097", "5138", "5122", "5139"):
        assert code in operations["streaming/start"], code
    assert "7039" in operations["live-recording/stop"] and "5140" in operations["streaming/stop"]
    assert "7046" in operations["streaming/stop"] and "5141" in operations["streaming/stop"]
    assert "202" in paths[f"{base}/streaming/start"]["post"]["responses"]
    session = str(paths[base]["get"])
    assert all(code in session for code in ("7207", "7104", "7080", "7081"))


def test_the_rooms_page_shows_slots_in_use_and_the_projects_place_in_the_queue(
    api, room, client, world
):
    other = do_create_project("Other", acting_user=world.charlie)
    theirs = Client(client, other.project.app_id, other.app_key)
    [their_conf] = sessions(theirs, Room.objects.create(project=other.project, name="x"), 1)
    theirs.begin(their_conf)
    first, second = sessions(api, room, 2)
    api.begin(first, "streaming")
    api.begin(second)
    client.force_login(world.bob)
    html = client.get(f"/projects/{world.app_id}/rooms/").content.decode()
    assert "Recorders in use: <strong>1 of 1</strong>" in html
    assert "<strong>2</strong> requests waiting" in html
    assert first in html and "number 1 in the queue" in html
    assert second in html and "number 2 in the queue" in html
    assert their_conf not in html  # another project's session is none of ours
    theirs.halt(their_conf)
    html = client.get(f"/projects/{world.app_id}/rooms/").content.decode()
    assert "Recorder running" in html and "number 1 in the queue" in html


def test_the_schedule_starts_waiting_requests_when_slots_free_without_a_stop(
    api, room, client, world, settings
):
    other = do_create_project("Other", acting_user=world.charlie)
    theirs = Client(client, other.project.app_id, other.app_key)
    [their_conf] = sessions(theirs, Room.objects.create(project=other.project, name="x"), 1)
    theirs.begin(their_conf)
    [conf] = sessions(api, room, 1)
    assert api.begin(conf).json()["result"] == 7207
    other.project.delete()  # its session and its slot go with it
    assert states(api, conf)[0]["state"] == "waiting"
    assert tasks.expire_waiting_recorders() == 0
    assert states(api, conf)[0]["state"] == "on"


def test_a_stop_answers_with_what_the_freed_slot_started_in_the_same_session(api, room):
    [conf] = sessions(api, room, 1)
    api.begin(conf)
    assert api.begin(conf, "streaming").json()["result"] == 7104
    stopped = api.halt(conf).json()
    assert stopped["live_recording"]["state"] == "off"
    assert stopped["streaming"] == {"state": "on", "position": None, "code": None}
