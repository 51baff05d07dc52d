"""Every change of state of a project's webhook: its endpoint, and events
sent to it by hand (``do_<verb>_<noun>()``, as ``projects.actions`` says).
Secrets are returned to the caller once (to be shown once) and never
written to the audit log."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from django.db import transaction

from projects.audit import log_audit
from projects.models import AuditEvent, Project

from . import sending
from .models import WebhookAttempt, WebhookEndpoint, WebhookMessage

KEEP = object()  # "leave the stored Basic password as it is"


def generate_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def url_for_audit(url: str) -> str:
    """The URL without query or fragment, which some receivers use for tokens."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


@dataclass(frozen=True)
class WebhookChange:
    endpoint: WebhookEndpoint
    new_secret: str | None  # set only when generated or rotated by this change
    changed: tuple[str, ...]


@transaction.atomic
def do_configure_webhook(
    project: Project,
    *,
    url: str,
    enabled: bool = True,
    basic_username: str = "",
    basic_password=KEEP,
    rotate_secret: bool = False,
    events: list[str] | None = None,
    legacy_event_names: bool | None = None,
    acting_user,
    ip: str | None = None,
) -> WebhookChange:
    """Create or update the endpoint. ``basic_password`` is KEEP (leave it),
    "" (remove it) or a new password. A secret is generated on first save
    and when ``rotate_secret`` is set. ``events`` ([] = every event) and
    ``legacy_event_names`` are left as they are when None."""
    endpoint = WebhookEndpoint.objects.select_for_update().filter(project=project).first()
    created = endpoint is None
    if endpoint is None:
        endpoint = WebhookEndpoint(project=project)
    changed = []
    updates = [("url", url), ("enabled", enabled), ("basic_username", basic_username)]
    if events is not None:
        updates.append(("events", events))
    if legacy_event_names is not None:
        updates.append(("legacy_event_names", legacy_event_names))
    for field, value in updates:
        if created or getattr(endpoint, field) != value:
            setattr(endpoint, field, value)
            changed.append(field)
    if not basic_username and endpoint.basic_password:
        basic_password = ""
    if basic_password is not KEEP and basic_password != endpoint.basic_password:
        endpoint.basic_password = basic_password
        changed.append("basic_password_removed" if basic_password == "" else "basic_password_set")
    new_secret = None
    if created or rotate_secret:
        new_secret = generate_secret()
        endpoint.secret = new_secret
        changed.append("secret_generated" if created else "secret_rotated")
    if changed:
        endpoint.save()
        log_audit(
            project,
            AuditEvent.Action.WEBHOOK_CHANGED,
            actor=acting_user,
            ip=ip,
            changed=changed,
            url=url_for_audit(endpoint.url),
            enabled=endpoint.enabled,
            basic_username=endpoint.basic_username,
            events=endpoint.events or "all",
            legacy_event_names=endpoint.legacy_event_names,
        )
    return WebhookChange(endpoint, new_secret, tuple(changed))


@transaction.atomic
def do_rotate_webhook_secret(project: Project, *, acting_user, ip: str | None = None) -> str:
    endpoint = WebhookEndpoint.objects.select_for_update().get(project=project)
    new_secret = generate_secret()
    endpoint.secret = new_secret
    endpoint.save(update_fields=["secret", "updated_at"])
    log_audit(
        project,
        AuditEvent.Action.WEBHOOK_CHANGED,
        actor=acting_user,
        ip=ip,
        changed=["secret_rotated"],
    )
    return new_secret


def do_resend_webhook_message(
    message: WebhookMessage, *, acting_user, ip: str | None = None
) -> WebhookAttempt | None:
    """Send the message again now, under the same ``webhook-id``. The audit
    row is committed first; the HTTP attempt runs outside any transaction of
    ours (a slow receiver must not hold one open). None if the message is
    being sent at this moment."""
    with transaction.atomic():
        log_audit(
            message.project, AuditEvent.Action.WEBHOOK_SENT, actor=acting_user, ip=ip,
            event=message.event_type, msg_id=message.msg_id, resend=True,
        )  # fmt: skip
    return sending.resend(message)


def do_send_test_webhook(
    project: Project, *, acting_user, ip: str | None = None
) -> WebhookAttempt | None:
    """Send a ``test`` event now (one attempt, never retried), audited like a
    resend. None if the project has no endpoint."""
    if not WebhookEndpoint.objects.filter(project=project).exists():
        return None
    with transaction.atomic():
        log_audit(
            project, AuditEvent.Action.WEBHOOK_SENT, actor=acting_user, ip=ip, event="test"
        )  # fmt: skip
    return sending.send_test_event(project)
