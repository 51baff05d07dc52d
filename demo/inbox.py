"""The demo's webhook inbox: the portal receives the demo project's own
signed webhooks, so a newcomer sees the ``file_transfer`` that announced a
delivery without running a server of their own.

Off unless ``DEMO_WEBHOOK_INBOX`` is set (only `make run` sets it), and even
then only for the demo project that ``manage.py setup_demo`` made: a tenant
of a real installation cannot use the portal as a free webhook receiver.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.http import Http404
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from projects.management.commands.setup_demo import DEMO_DESTINATION, DEMO_PROJECT, DEMO_USERNAME
from projects.models import Project, Role
from webhooks.models import WebhookEndpoint

from .models import InboxMessage

# A file_transfer of a 3-participant session is ~3 KB; 256 KiB leaves room
# for sessions with hundreds of files and keeps a flood of big bodies cheap.
MAX_BODY_BYTES = 256 * 1024
# The inbox is a window on recent events, not an archive.
KEEP_MESSAGES = 50


class Refused(Exception):
    """The POST is not a webhook of the demo project; nothing is stored."""


def enabled() -> bool:
    return bool(getattr(settings, "DEMO_WEBHOOK_INBOX", False))


def is_demo_project(project: Project) -> bool:
    """The project setup_demo created: its name, owned by the demo user."""
    return (
        enabled()
        and project.name == DEMO_PROJECT
        and project.memberships.filter(user__username=DEMO_USERNAME, role=Role.OWNER).exists()
    )


def demo_project(app_id: str) -> Project:
    """The demo project ``app_id`` while the inbox is on; 404 otherwise."""
    project = Project.objects.filter(app_id=app_id).first()
    if project is None or not is_demo_project(project):
        raise Http404("No such page")
    return project


def inbox_path(project: Project) -> str:
    return f"/projects/{project.app_id}/webhook-inbox/receive"


def inbox_url(project: Project) -> str:
    """Where the demo project's webhook points (the portal itself)."""
    return settings.PUBLIC_BASE_URL + inbox_path(project)


@transaction.atomic
def do_receive_webhook(project: Project, body: bytes, headers: Mapping[str, str]) -> InboxMessage:
    """Keep ``body`` if its Standard Webhooks signature verifies with the
    project's webhook secret; raise Refused (storing nothing) otherwise."""
    headers = {name.lower(): value for name, value in headers.items()}
    endpoint = WebhookEndpoint.objects.filter(project=project).first()
    if endpoint is None or not endpoint.secret:
        raise Refused("The demo project has no webhook secret to check the signature with.")
    try:
        Webhook(endpoint.secret).verify(body, headers)
        text = body.decode()
    except (WebhookVerificationError, ValueError):
        # ValueError: a malformed signature header, base64 or UTF-8.
        raise Refused("The webhook signature does not match the demo project's secret.") from None
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    event_type = payload.get("type", "") if isinstance(payload, dict) else ""
    message = InboxMessage.objects.create(
        project=project,
        msg_id=headers.get("webhook-id", "")[:64],
        event_type=str(event_type)[:40],
        body=text,
        sent_at=datetime.fromtimestamp(float(headers["webhook-timestamp"]), tz=UTC),
    )
    stale = list(
        InboxMessage.objects.filter(project=project).values_list("pk", flat=True)[KEEP_MESSAGES:]
    )
    if stale:
        InboxMessage.objects.filter(pk__in=stale).delete()
    return message


@dataclass(frozen=True)
class FileOnDisk:
    name: str
    path: str
    size: int | None  # None: not (or no longer) on disk


@dataclass(frozen=True)
class DeliveredSession:
    conf_num: str
    room: str
    state: str
    state_label: str
    files: list[FileOnDisk]


def delivered_sessions(project: Project) -> list[DeliveredSession]:
    """What the demo folder destination received, with each file's path on
    this machine and whether it is there."""
    from delivery.models import Delivery

    deliveries = (
        Delivery.objects.filter(session__project=project, destination__name=DEMO_DESTINATION)
        .select_related("session__room", "destination")
        .prefetch_related("files__recording_file")
        .order_by("-created_at")[:10]
    )
    sessions = []
    for delivery in deliveries:
        files = []
        for delivered in delivery.files.all():
            # A local folder destination records the file's absolute path.
            path = delivered.remote_path
            size = os.path.getsize(path) if path and os.path.isfile(path) else None
            files.append(FileOnDisk(delivered.recording_file.name, path, size))
        sessions.append(
            DeliveredSession(
                conf_num=delivery.session.conf_num,
                room=delivery.session.room.name,
                state=delivery.state,
                state_label=delivery.get_state_display(),
                files=files,
            )
        )
    return sessions


def pretty(body: str) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body
