from __future__ import annotations

import pytest
from django.urls import reverse

from projects.models import AuditEvent, RecordingCredentials, Role
from tests.conftest import PASSWORD
from tests.factories import make_recording

NEW_PASSWORD = "Blue-Heron-2048"


def access_url(world):
    return reverse("projects:access", args=[world.app_id])


def test_tab_and_page_are_hidden_without_recordings(client, world):
    client.force_login(world.alice)
    overview = client.get(reverse("projects:detail", args=[world.app_id])).content.decode()
    assert "Recording Access Control" not in overview
    assert client.get(access_url(world)).status_code == 404


def test_tab_and_page_appear_with_one_recording(client, world):
    make_recording(world.project)
    client.force_login(world.alice)
    overview = client.get(reverse("projects:detail", args=[world.app_id])).content.decode()
    assert "Recording Access Control" in overview
    assert client.get(access_url(world)).status_code == 200


@pytest.fixture
def recorded(world):
    make_recording(world.project)
    return world


def post_reset(client, world, **overrides):
    data = {
        "account_password": PASSWORD,
        "new_password": NEW_PASSWORD,
        "confirm_password": NEW_PASSWORD,
        **overrides,
    }
    return client.post(access_url(world), data)


def test_a_nine_character_password_is_refused_with_a_message_about_ten(client, recorded):
    client.force_login(recorded.alice)
    response = post_reset(client, recorded, new_password="Abc-12345", confirm_password="Abc-12345")
    assert response.status_code == 200
    assert "at least 10 characters" in response.content.decode()
    creds = RecordingCredentials.objects.get(project=recorded.project)
    assert creds.default_password == recorded.created.recording_password


def test_a_wrong_account_password_changes_nothing(client, recorded):
    client.force_login(recorded.alice)
    before = RecordingCredentials.objects.get(project=recorded.project).password_hash
    response = post_reset(client, recorded, account_password="not my password")
    assert "not your account password" in response.content.decode()
    after = RecordingCredentials.objects.get(project=recorded.project)
    assert after.password_hash == before
    assert after.default_password


def test_mismatched_confirmation_is_refused_next_to_the_field(client, recorded):
    client.force_login(recorded.alice)
    response = post_reset(client, recorded, confirm_password="Something-else-1")
    assert "do not match" in response.content.decode()


def test_a_common_password_is_refused_by_django_validators(client, recorded):
    client.force_login(recorded.alice)
    response = post_reset(client, recorded, new_password="password123", confirm_password="password123")
    assert "too common" in response.content.decode()


@pytest.mark.parametrize("role", [Role.STAFF, Role.ADMIN, Role.OWNER])
def test_a_valid_reset_replaces_the_default_password(client, recorded, member, role):
    user = member(role, client)
    response = post_reset(client, recorded)
    assert response.status_code == 302
    creds = RecordingCredentials.objects.get(project=recorded.project)
    assert not creds.matches(creds.username, recorded.created.recording_password)
    assert creds.matches(creds.username, NEW_PASSWORD)
    assert creds.default_password == ""
    event = AuditEvent.objects.get(action=AuditEvent.Action.RECORDING_PASSWORD_CHANGED)
    assert event.actor == user and event.ip_address == "127.0.0.1"
    page = client.get(access_url(recorded)).content.decode()
    assert recorded.created.recording_password not in page
    assert NEW_PASSWORD not in page


def test_viewers_are_refused(client, recorded):
    client.force_login(recorded.bob)
    assert client.get(access_url(recorded)).status_code == 403
    assert post_reset(client, recorded).status_code == 403


def test_outsiders_are_refused(client, recorded):
    client.force_login(recorded.charlie)
    assert post_reset(client, recorded).status_code == 404
