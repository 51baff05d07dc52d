"""Creating a project and changing its keys: the app key and the recording password."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone

from ..audit import log_audit
from ..models import AuditEvent, Membership, Project, RecordingCredentials, Role


@dataclass(frozen=True)
class NewProject:
    project: Project
    app_key: str
    recording_username: str
    recording_password: str


def generate_recording_password() -> str:
    return secrets.token_urlsafe(12)


@transaction.atomic
def do_create_project(name: str, *, acting_user, ip: str | None = None) -> NewProject:
    """A new project owned by ``acting_user``, with its app key and recording
    password (both returned once, to be shown once)."""
    owner = acting_user
    project = Project(name=name)
    app_key = project.set_app_key()
    project.save()
    Membership.objects.create(project=project, user=owner, role=Role.OWNER)
    password = generate_recording_password()
    credentials = RecordingCredentials.objects.create(
        project=project,
        username=f"rec_{project.app_id}",
        password_hash=make_password(password),
        default_password=password,
    )
    log_audit(project, AuditEvent.Action.PROJECT_CREATED, actor=owner, ip=ip, name=name)
    return NewProject(project, app_key, credentials.username, password)


@transaction.atomic
def do_regenerate_app_key(project: Project, *, acting_user, ip: str | None = None) -> str:
    project = Project.objects.select_for_update().get(pk=project.pk)
    app_key = project.set_app_key()
    project.save(update_fields=["app_key_hash"])
    log_audit(project, AuditEvent.Action.APP_KEY_REGENERATED, actor=acting_user, ip=ip)
    return app_key


@transaction.atomic
def do_change_recording_password(
    project: Project, new_password: str, *, acting_user, ip: str | None = None
) -> None:
    credentials = RecordingCredentials.objects.select_for_update().get(project=project)
    credentials.set_password(new_password)
    credentials.default_password = ""
    credentials.changed_at = timezone.now()
    credentials.changed_by = acting_user
    credentials.save(
        update_fields=["password_hash", "default_password", "changed_at", "changed_by"]
    )
    log_audit(project, AuditEvent.Action.RECORDING_PASSWORD_CHANGED, actor=acting_user, ip=ip)
