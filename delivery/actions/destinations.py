"""Changes to a project's delivery destinations, made by administrators (pages)
or scripts (the ``delivery`` command). Secret values never reach the audit
log: only the names of the settings that changed. What a kind adds (a
Google account, an SSH key pair) is in its folder; these actions call the
kind's hooks (``on_config_change``, ``on_delete``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from projects.audit import log_audit
from projects.models import AuditEvent, Project

from ..destinations import destination_class
from ..destinations.base import ATTENTION_KEY
from ..models import DeliveryDestination

# Settings that say *where* the server is: changing one drops the pinned key.
ENDPOINT_KEYS = ("host", "port")


@transaction.atomic
def do_save_destination(
    project: Project,
    kind: str,
    *,
    name: str,
    file_types: Iterable[str],
    enabled: bool,
    public_config: dict[str, Any],
    new_secrets: dict[str, str],
    write_manifest: bool = True,
    destination: DeliveryDestination | None = None,
    acting_user,
    ip: str | None = None,
) -> DeliveryDestination:
    """Create ``destination`` (None) or update it with the kind's settings
    (``delivery.forms.destination_settings`` of a valid kind form).

    Secrets not in ``new_secrets`` keep their stored values; settings no form
    shows (the pinned fingerprint, a connected account) are kept, except that
    the pinned fingerprint is dropped when the host or port changes, and
    whatever the kind's ``on_config_change`` drops (e.g. the shown public key
    of a replaced private key)."""
    public = public_config
    created = destination is None
    if destination is None:
        destination = DeliveryDestination(project=project, kind=kind)
    else:
        destination = DeliveryDestination.objects.select_for_update().get(pk=destination.pk)
    old_config = dict(destination.config or {})
    config = {**old_config, **public}
    destination_class(kind).on_config_change(old_config, config, new_secrets)
    if any(str(old_config.get(k, "")) != str(config.get(k, "")) for k in ENDPOINT_KEYS):
        config.pop("pinned_fingerprint", None)
    changed = [
        k for k in sorted(set(config) | set(old_config)) if config.get(k) != old_config.get(k)
    ]
    stored = dict(destination.secrets or {})
    changed += [f"{k} (secret)" for k, v in sorted(new_secrets.items()) if stored.get(k) != v]
    file_types = list(file_types)
    for attr, value in (
        ("name", name),
        ("enabled", enabled),
        ("file_types", file_types),
        ("write_manifest", write_manifest),
    ):
        if created or getattr(destination, attr) != value:
            setattr(destination, attr, value)
            changed.append(attr)
    destination.config = config
    destination.secrets = {**stored, **new_secrets}
    if created or changed:
        destination.save()
        audit_change(destination, "created" if created else "updated", acting_user, ip, changed=changed)
    return destination


def audit_change(destination: DeliveryDestination, what: str, actor, ip, **detail: Any) -> None:
    """The audit row of a change to ``destination`` (``what``: "updated",
    "key pair generated", ...); for the kinds' actions too."""
    log_audit(
        destination.project,
        AuditEvent.Action.DELIVERY_CHANGED,
        actor=actor,
        ip=ip,
        destination=destination.name,
        destination_id=destination.pk,
        kind=destination.kind,
        change=what,
        **detail,
    )


@transaction.atomic
def do_trust_fingerprint(
    destination: DeliveryDestination, fingerprint: str, *, acting_user, ip: str | None = None
) -> None:
    """Pin the server's host key or certificate ``fingerprint`` (SHA256:...)."""
    destination = DeliveryDestination.objects.select_for_update().get(pk=destination.pk)
    previous = destination.config.get("pinned_fingerprint") or ""
    destination.config = {**destination.config, "pinned_fingerprint": fingerprint}
    destination.save(update_fields=["config", "updated_at"])
    log_audit(
        destination.project,
        AuditEvent.Action.DELIVERY_HOST_KEY_TRUSTED,
        actor=acting_user,
        ip=ip,
        destination=destination.name,
        destination_id=destination.pk,
        fingerprint=fingerprint,
        previous=previous,
    )


@transaction.atomic
def do_delete_destination(
    destination: DeliveryDestination, *, acting_user, ip: str | None = None
) -> None:
    """Delete ``destination`` and its delivery history; the kind's
    ``on_delete`` runs in the same transaction (e.g. a grant is revoked
    after commit)."""
    audit_change(destination, "deleted", acting_user, ip)
    destination_class(destination.kind).on_delete(destination)
    destination.delete()


def do_record_account_error(destination: DeliveryDestination, message: str) -> None:
    """Remember that the destination's account must be connected again (a
    ``needs_reconnect`` error), so the settings pages say so
    (``Destination.needs_attention``); an empty ``message`` (a test that
    passed) forgets it."""
    if destination.config.get(ATTENTION_KEY, "") == message:
        return
    config = {k: v for k, v in destination.config.items() if k != ATTENTION_KEY}
    if message:
        config[ATTENTION_KEY] = message
    DeliveryDestination.objects.filter(pk=destination.pk).update(config=config)
    destination.config = config
