"""Connecting and disconnecting the Google account of a Google Drive
destination (the settings page's buttons, the command's ``connect-url``).
Tokens never reach the audit log; a replaced or forgotten grant is revoked
at Google after commit."""

from __future__ import annotations

import secrets as random_tokens

from django.db import transaction

from ...actions.destinations import audit_change
from ...models import DeliveryDestination
from ..base import ATTENTION_KEY
from . import oauth
from .connect import HEADLESS_NONCE, ConnectState, google_redirect_uri, make_connect_state


@transaction.atomic
def do_start_headless_connect(destination: DeliveryDestination, *, acting_user) -> str:
    """Consent URL for setups without a browser session (CLI): the one-time
    nonce is kept, encrypted, on the destination."""
    destination = DeliveryDestination.objects.select_for_update().get(pk=destination.pk)
    nonce = random_tokens.token_urlsafe(16)
    destination.secrets = {**(destination.secrets or {}), HEADLESS_NONCE: nonce}
    destination.save(update_fields=["secrets", "updated_at"])
    state = make_connect_state(destination, nonce, headless=True)
    return oauth.authorization_url(google_redirect_uri(), state)


@transaction.atomic
def claim_headless_nonce(destination: DeliveryDestination, state: ConnectState) -> bool:
    """Use up the nonce of a consent URL made by ``do_start_headless_connect``."""
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
    account: oauth.ConnectedAccount,
    *,
    acting_user,
    ip: str | None = None,
) -> None:
    destination = DeliveryDestination.objects.select_for_update().get(pk=destination.pk)
    old_token = (destination.secrets or {}).get("refresh_token")
    destination.secrets = {**(destination.secrets or {}), "refresh_token": account.refresh_token}
    config = {k: v for k, v in destination.config.items() if k != ATTENTION_KEY}
    destination.config = {**config, "account_email": account.email}
    destination.save(update_fields=["secrets", "config", "updated_at"])
    audit_change(destination, "Google account connected", acting_user, ip, account_email=account.email)
    if old_token and old_token != account.refresh_token:
        transaction.on_commit(lambda: revoke_quietly(old_token))


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
            oauth.revoke(token)
        except oauth.GoogleOAuthError:
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
        k: v for k, v in destination.config.items() if k not in ("account_email", ATTENTION_KEY)
    }
    destination.config = config
    destination.save(update_fields=["secrets", "config", "updated_at"])
    audit_change(destination, "Google account disconnected", acting_user, ip, revoked=revoked)
    return revoked


def revoke_quietly(token: str) -> None:
    try:
        oauth.revoke(token)
    except oauth.GoogleOAuthError:
        pass  # the grant stays listed in the user's Google account; nothing else to do
