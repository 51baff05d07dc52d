"""The Rooms page: members list rooms, admins create them with the API's rules."""

from __future__ import annotations

import pytest
from django.urls import reverse

from projects.models import AuditEvent, Role, Room

pytestmark = pytest.mark.django_db

VALID = {"name": "Standup", "owner_ref": "team-7", "mode": "lecture", "live_url": ""}


def url(world) -> str:
    return reverse("projects:rooms", args=[world.app_id])


def test_viewers_see_the_rooms_but_no_form(client, world):
    Room.objects.create(project=world.project, name="Weekly sync")
    client.force_login(world.bob)
    response = client.get(url(world))
    assert response.status_code == 200
    assert b"Weekly sync" in response.content
    assert b"Create a room" not in response.content


def test_viewers_cannot_create_rooms(client, world):
    client.force_login(world.bob)
    response = client.post(url(world), VALID)
    assert response.status_code == 403
    assert not Room.objects.exists()


def test_admins_create_rooms(client, world, member):
    member(Role.ADMIN, client)
    response = client.post(url(world), {**VALID, "auto_recording": "on"}, follow=True)
    room = Room.objects.get()
    assert (room.name, room.owner_ref, room.project) == ("Standup", "team-7", world.project)
    assert room.settings["mode"] == "lecture" and room.auto_recording
    assert room.room_id.encode() in response.content


def test_live_auto_recording_needs_a_url_and_the_error_is_next_to_it(client, world):
    client.force_login(world.alice)
    response = client.post(url(world), {**VALID, "live_auto_recording": "on"})
    assert response.status_code == 400
    form = response.context["form"]
    assert "required when live auto_recording is on" in form.errors["live_url"][0]
    assert b'id="id_live_url_error"' in response.content
    assert not Room.objects.exists()


def test_bad_live_urls_and_chat_only_recording_are_refused(client, world):
    client.force_login(world.alice)
    response = client.post(url(world), {**VALID, "live_url": "ftp://example.com/x"})
    assert "http(s)" in response.context["form"].errors["live_url"][0]
    response = client.post(url(world), {**VALID, "chat_only": "on", "auto_recording": "on"})
    assert "chat-only" in response.context["form"].errors["chat_only"][0]
    assert not Room.objects.exists()


def test_a_name_is_required(client, world):
    client.force_login(world.alice)
    response = client.post(url(world), {**VALID, "name": ""})
    assert response.context["form"].errors["name"]


def test_other_projects_rooms_are_not_listed(client, world):
    from projects.actions.projects import do_create_project

    other = do_create_project("Other", acting_user=world.charlie).project
    Room.objects.create(project=other, name="Secret room")
    client.force_login(world.alice)
    assert b"Secret room" not in client.get(url(world)).content


def test_the_rooms_tab_is_shown(client, world):
    client.force_login(world.bob)
    response = client.get(reverse("projects:detail", args=[world.app_id]))
    assert url(world).encode() in response.content


def test_creating_a_room_on_the_page_is_audited(client, world, member):
    admin = member(Role.ADMIN, client)
    client.post(url(world), VALID)
    room = Room.objects.get()
    event = AuditEvent.objects.get(action=AuditEvent.Action.ROOM_CREATED)
    assert (event.actor, event.project) == (admin, world.project)
    assert event.detail == {"room_id": room.room_id, "name": "Standup"}
