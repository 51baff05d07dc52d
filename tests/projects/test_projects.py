from __future__ import annotations

import pytest
from django.core.management import call_command
from django.urls import reverse

from projects.models import AuditEvent, Project, RecordingCredentials


def test_project_list_shows_only_the_users_projects(client, world, make_user):
    other_owner = make_user("dora")
    from projects.actions.projects import do_create_project

    do_create_project("Hidden", acting_user=other_owner)
    client.force_login(world.bob)
    page = client.get(reverse("projects:list")).content.decode()
    assert "Alpha" in page
    assert "Hidden" not in page


def test_outsider_sees_an_empty_list_with_guidance(client, world):
    client.force_login(world.charlie)
    page = client.get(reverse("projects:list")).content.decode()
    assert "Alpha" not in page
    assert "not a member of any project" in page


def test_creating_a_project_shows_the_app_key_once_and_stores_only_its_hash(client, world):
    client.force_login(world.charlie)
    response = client.post(reverse("projects:create"), {"name": "Charlie's"})
    assert response.status_code == 200
    project = Project.objects.get(name="Charlie's")
    page = response.content.decode()
    assert project.app_id in page
    app_key = response.context["created"].app_key
    assert app_key in page
    assert app_key not in project.app_key_hash
    assert project.check_app_key(app_key)
    # The overview afterwards never shows it again.
    assert app_key not in client.get(project.get_absolute_url()).content.decode()
    assert project.memberships.get().user == world.charlie


def test_create_project_form_rejects_a_blank_name(client, world):
    client.force_login(world.alice)
    response = client.post(reverse("projects:create"), {"name": ""})
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()


def test_owner_regenerates_the_app_key_and_the_old_one_stops_working(client, world):
    client.force_login(world.alice)
    response = client.post(reverse("projects:regenerate_app_key", args=[world.app_id]))
    new_key = response.context["app_key"]
    world.project.refresh_from_db()
    assert world.project.check_app_key(new_key)
    assert not world.project.check_app_key(world.created.app_key)
    assert AuditEvent.objects.filter(
        project=world.project, action=AuditEvent.Action.APP_KEY_REGENERATED, actor=world.alice
    ).exists()


def test_viewer_cannot_regenerate_the_app_key(client, world):
    client.force_login(world.bob)
    response = client.post(reverse("projects:regenerate_app_key", args=[world.app_id]))
    assert response.status_code == 403
    assert "owner role" in response.content.decode()


def test_regenerating_needs_post(client, world):
    client.force_login(world.alice)
    response = client.get(reverse("projects:regenerate_app_key", args=[world.app_id]))
    assert response.status_code == 405


def test_createproject_command_prints_parseable_credentials(world, capsys):
    call_command("createproject", "Scripted", owner="alice")
    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.split())
    project = Project.objects.get(app_id=lines["APP_ID"])
    assert project.check_app_key(lines["APP_KEY"])
    creds = RecordingCredentials.objects.get(project=project)
    assert creds.username == lines["RECORDING_USERNAME"]
    assert creds.matches(lines["RECORDING_USERNAME"], lines["RECORDING_PASSWORD"])
    assert creds.default_password == lines["RECORDING_PASSWORD"]


def test_createproject_command_refuses_an_unknown_owner(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No user 'nobody'"):
        call_command("createproject", "X", owner="nobody")


def test_login_page_renders_and_logs_in(client, world):
    assert client.get(reverse("login")).status_code == 200
    response = client.post(
        reverse("login"), {"username": "alice", "password": "correct horse battery staple"}
    )
    assert response.status_code == 302
    assert client.get(reverse("projects:list")).status_code == 200


def test_an_app_key_never_starts_with_a_dash(monkeypatch):
    """A key that starts with "-" is read as an option after ``--app-key``."""
    import secrets

    draws = iter(["-starts-with-a-dash", "fine-key"])
    monkeypatch.setattr(secrets, "token_urlsafe", lambda n: next(draws))
    project = Project(name="p")
    assert project.set_app_key() == "fine-key"
    assert project.check_app_key("fine-key")
