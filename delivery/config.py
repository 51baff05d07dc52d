"""Changes to a project's delivery destinations, made by administrators (pages)
or scripts (the ``delivery`` command). Secret values never reach the audit
log: only the names of the settings that changed."""

from __future__ import annotations

import secrets as random_tokens
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse

from projects.audit import log_audit
from projects.models import AuditEvent, Project

from . import google_oauth
from .destinations import destination_for
from .destinations.keypairs import generate_keypair
from .models import DeliveryDestination

# Settings that say *where* the server is: changing one drops the pinned key.
ENDPOINT_KEYS = ("host", "port")
# Config keys the forms do not own; saving a form keeps them.
GOOGLE_ERROR_KEY = "account_error"
CONNECT_SALT = "delivery.google.connect"
CONNECT_MAX_AGE = 3600  # seconds a consent URL stays usable
HEADLESS_NONCE = "connect_nonce"  # kept in secrets: one-time, for CLI consent URLs


class ConnectStateError(Exception):
    """The ``state`` of a Google OAuth callback is forged, expired or not ours."""


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
    shows (the pinned fingerprint, the Google account) are kept, except that
    the pinned fingerprint is dropped when the host or port changes and the
    shown public key when a private key is given without its public one."""
    public = public_config
    created = destination is None
    if destination is None:
        destination = DeliveryDestination(project=project, kind=kind)
    else:
        destination = DeliveryDestination.objects.select_for_update().get(pk=destination.pk)
    old_config = dict(destination.config or {})
    config = {**old_config, **public}
    if "private_key" in new_secrets and not public.get("public_key"):
        config.pop("public_key", None)  # the shown public key belonged to the old key
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
        _audit(destination, "created" if created else "updated", acting_user, ip, changed=changed)
    return destination


def _audit(destination: DeliveryDestination, what: str, actor, ip, **detail: Any) -> None:
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
    """Pin the SSH host key or FTPS certificate ``fingerprint`` (SHA256:...)."""
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
    _audit(destination, "deleted", acting_user, ip)
    token = (destination.secrets or {}).get("refresh_token")
    destination.delete()
    if token:
        transaction.on_commit(lambda: _revoke_quietly(token))


def _revoke_quietly(token: str) -> None:
    try:
        google_oauth.revoke(token)
    except google_oauth.GoogleOAuthError:
        pass  # the grant stays listed in the user's Google account; nothing else to do


@transaction.atomic
def do_generate_keypair(
    destination: DeliveryDestination, *, acting_user, ip: str | None = None
) -> str:
    """Give an SSH destination a new ed25519 key (stored encrypted) and return
    the public ``authorized_keys`` line to paste on the server."""
    destination = DeliveryDestination.objects.select_for_update().get(pk=destination.pk)
    private, public = generate_keypair(f"recording-portal-{destination.project.app_id}")
    stored = {k: v for k, v in (destination.secrets or {}).items() if k != "passphrase"}
    destination.secrets = {**stored, "private_key": private}
    destination.config = {**destination.config, "public_key": public}
    destination.save(update_fields=["secrets", "config", "updated_at"])
    _audit(destination, "key pair generated", acting_user, ip, changed=["private_key (secret)"])
    return public


def describe_destination(destination: DeliveryDestination) -> str:
    """Short, secret-free description (``s3://bucket/root``) for pages and the CLI."""
    try:
        return destination_for(destination.kind, destination.merged_config()).describe()
    except Exception:  # noqa: BLE001 - an incomplete config must not break a page
        return destination.get_kind_display()


# -- Google account ------------------------------------------------------------------------------


def google_redirect_uri() -> str:
    """The callback registered for the OAuth client in Google Cloud."""
    return settings.PUBLIC_BASE_URL + reverse("delivery:google_callback")


@dataclass(frozen=True)
class ConnectState:
    app_id: str
    destination_id: int
    nonce: str
    headless: bool


def make_connect_state(destination: DeliveryDestination, nonce: str, *, headless: bool) -> str:
    payload = {"p": destination.project.app_id, "d": destination.pk, "n": nonce, "h": headless}
    return signing.dumps(payload, salt=CONNECT_SALT, compress=True)


def read_connect_state(state: str) -> ConnectState:
    try:
        data = signing.loads(state, salt=CONNECT_SALT, max_age=CONNECT_MAX_AGE)
        return ConnectState(str(data["p"]), int(data["d"]), str(data["n"]), bool(data["h"]))
    except signing.SignatureExpired:
        raise ConnectStateError("This Google consent link has expired: connect again.") from None
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise ConnectStateError(
            "This answer from Google does not belong to a connection started here "
            "(state mismatch): start again with “Connect Google account”."
        ) from None


def browser_connect_url(destination: DeliveryDestination, session) -> str:
    """Consent URL for the browser flow; the nonce is bound to the user's session."""
    nonce = random_tokens.token_urlsafe(16)
    pending = dict(session.get("google_connect", {}))
    pending[nonce] = destination.pk
    session["google_connect"] = dict(list(pending.items())[-5:])
    state = make_connect_state(destination, nonce, headless=False)
    return google_oauth.authorization_url(google_redirect_uri(), state)


def claim_browser_nonce(session, state: ConnectState) -> bool:
    pending = dict(session.get("google_connect", {}))
    ok = pending.pop(state.nonce, None) == state.destination_id
    session["google_connect"] = pending
    return ok


@transaction.atomic
def do_start_headless_connect(destination: DeliveryDestination, *, acting_user) -> str:
    """Consent URL for setups without a browser session (CLI): the one-time
    nonce is kept, encrypted, on the destination."""
    destination = DeliveryDestination.objects.select_for_update().get(pk=destination.pk)
    nonce = random_tokens.token_urlsafe(16)
    destination.secrets = {**(destination.secrets or {}), HEADLESS_NONCE: nonce}
    destination.save(update_fields=["secrets", "updated_at"])
    state = make_connect_state(destination, nonce, headless=True)
    return google_oauth.authorization_url(google_redirect_uri(), state)


@transaction.atomic
def claim_headless_nonce(destination: DeliveryDestination, state: ConnectState) -> bool:
    destination = DeliveryDestination.objects.select_for_update().get(pk=destination.pk)
    stored = (destination.secrets or {}).get(HEADLESS_NONCE)
    if not stored or not random_tokens.compare_digest(stored, state.nonce):
        return False
    destination.secrets = {k: v for k, v in destination.secrets.items() if k != HEADLESS_NONCE}
    destination.save(update_fields=["secrets", "updated_at"])
    return True


@transaction.atomic
def do_connect_google_account(
    destination: DeliveryDestination,
    account: google_oauth.ConnectedAccount,
    *,
    acting_user,
    ip: str | None = None,
) -> None:
    destination = DeliveryDestination.objects.select_for_update().get(pk=destination.pk)
    old_token = (destination.secrets or {}).get("refresh_token")
    destination.secrets = {**(destination.secrets or {}), "refresh_token": account.refresh_token}
    config = {k: v for k, v in destination.config.items() if k != GOOGLE_ERROR_KEY}
    destination.config = {**config, "account_email": account.email}
    destination.save(update_fields=["secrets", "config", "updated_at"])
    _audit(destination, "Google account connected", acting_user, ip, account_email=account.email)
    if old_token and old_token != account.refresh_token:
        transaction.on_commit(lambda: _revoke_quietly(old_token))


def do_disconnect_google_account(
    destination: DeliveryDestination, *, acting_user, ip: str | None = None
) -> bool:
    """Revoke the grant at Google and forget it. Returns False when Google
    could not be reached (the grant is forgotten here all the same). Google
    is asked before the row is locked: a slow answer must not hold the lock."""
    token = (destination.secrets or {}).get("refresh_token")
    revoked = True
    if token:
        try:
            google_oauth.revoke(token)
        except google_oauth.GoogleOAuthError:
            revoked = False
    return _forget_google_account(destination, revoked, acting_user=acting_user, ip=ip)


@transaction.atomic
def _forget_google_account(
    destination: DeliveryDestination, revoked: bool, *, acting_user, ip: str | None
) -> bool:
    destination = DeliveryDestination.objects.select_for_update().get(pk=destination.pk)
    destination.secrets = {
        k: v for k, v in (destination.secrets or {}).items() if k != "refresh_token"
    }
    config = {
        k: v for k, v in destination.config.items() if k not in ("account_email", GOOGLE_ERROR_KEY)
    }
    destination.config = config
    destination.save(update_fields=["secrets", "config", "updated_at"])
    _audit(destination, "Google account disconnected", acting_user, ip, revoked=revoked)
    return revoked


def do_record_account_error(destination: DeliveryDestination, message: str) -> None:
    """Remember that the Google grant no longer works, so the settings page
    offers "Reconnect Google account"; an empty ``message`` (a test that
    passed) forgets it."""
    if destination.config.get(GOOGLE_ERROR_KEY, "") == message:
        return
    config = {k: v for k, v in destination.config.items() if k != GOOGLE_ERROR_KEY}
    if message:
        config[GOOGLE_ERROR_KEY] = message
    DeliveryDestination.objects.filter(pk=destination.pk).update(config=config)
    destination.config = config
