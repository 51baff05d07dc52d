"""Per-project quotas: rooms, stored bytes and sessions live at once, refused
with 403 and a result code of their own in the APIs and a form error on the
Rooms page; 0 means unlimited."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from projects.models import Room
from projects.quotas import LIVE_SESSIONS_RESULT, ROOMS_RESULT, STORAGE_RESULT
from recordings.models import RecordingFile, Session
from tests.recordings.ingest_client import Ingest, basic
from tests.recordings.seed import make_room

pytestmark = pytest.mark.django_db


@pytest.fixture
def ingest(client, world):
    return Ingest(client, world.app_id, world.created.app_key)


def create_room(client, world, name: str):
    return client.post(
        "/video/v2/rooms", data=json.dumps({"name": name}), content_type="application/json",
        **basic(world.app_id, world.created.app_key),
    )  # fmt: skip


def test_the_video_api_refuses_a_room_past_the_limit(client, world, settings):
    settings.PROJECT_MAX_ROOMS = 2
    assert create_room(client, world, "one").status_code == 200
    assert create_room(client, world, "two").status_code == 200
    refused = create_room(client, world, "three")
    assert refused.status_code == 403
    body = refused.json()
    assert body["result"] == ROOMS_RESULT and "limit of 2 rooms" in body["error"]
    assert world.project.rooms.count() == 2


def test_zero_means_unlimited(client, world, settings):
    settings.PROJECT_MAX_ROOMS = 0
    for n in range(3):
        assert create_room(client, world, f"room {n}").status_code == 200


def test_the_rooms_page_shows_the_limit_as_a_form_error(client, world, settings):
    settings.PROJECT_MAX_ROOMS = 1
    make_room(world.project)
    client.force_login(world.alice)
    response = client.post(
        reverse("projects:rooms", args=[world.app_id]), {"name": "Another", "mode": "group"}
    )
    assert response.status_code == 400
    assert "limit of 1 rooms" in response.content.decode()
    assert Room.objects.filter(project=world.project).count() == 1


def test_a_session_past_the_live_limit_is_refused(ingest, world, settings):
    settings.PROJECT_MAX_LIVE_SESSIONS = 2
    room = make_room(world.project)
    first = ingest.start(room)
    ingest.start(room)
    refused = ingest.post(f"/rooms/{room.room_id}/sessions")
    assert refused.status_code == 403
    assert refused.json()["result"] == LIVE_SESSIONS_RESULT
    assert "2 sessions live at once" in refused.json()["error"]
    # Ending one frees its slot.
    assert ingest.end(first).status_code == 200
    assert ingest.post(f"/rooms/{room.room_id}/sessions").status_code == 201


def test_an_upload_past_the_storage_limit_is_refused_and_nothing_is_kept(
    ingest, world, settings
):
    settings.PROJECT_MAX_STORAGE_BYTES = 1000
    conf_num = ingest.start(make_room(world.project))
    ok = ingest.upload(conf_num, SimpleUploadedFile("chat.json", b"[" + b" " * 598 + b"]"), "chat")
    assert ok.status_code == 201, ok.content
    refused = ingest.upload(
        conf_num, SimpleUploadedFile("metadata.json", b"{" + b" " * 498 + b"}"), "metadata"
    )
    assert refused.status_code == 403
    assert refused.json()["result"] == STORAGE_RESULT
    assert "PROJECT_MAX_STORAGE_BYTES" in refused.json()["error"]
    assert RecordingFile.objects.filter(session__conf_num=conf_num).count() == 1
    assert sorted(p.name for p in settings.RECORDINGS_ROOT.rglob("*") if p.is_file()) == [
        "chat.json"
    ]


def test_a_full_project_is_refused_before_the_body_is_read(ingest, world, settings):
    settings.PROJECT_MAX_STORAGE_BYTES = 10
    session = Session.objects.get(conf_num=ingest.start(make_room(world.project)))
    RecordingFile.objects.create(
        session=session, project=world.project, type="chat", name="x.json", size=10,
        sha256="0" * 64, storage_path="x/x.json",
    )  # fmt: skip
    refused = ingest.upload(session.conf_num, SimpleUploadedFile("chat.json", b"[]"), "chat")
    assert refused.status_code == 403 and refused.json()["result"] == STORAGE_RESULT
