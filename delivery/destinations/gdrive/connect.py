"""The "Connect Google account" flow's ``state``: signed, short-lived, naming
the project and destination and carrying a one-time nonce, bound either to
the administrator's browser session or (for the command's consent URLs) to
the destination itself."""

from __future__ import annotations

import secrets as random_tokens
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.urls import reverse

from . import oauth

CONNECT_SALT = "delivery.google.connect"
CONNECT_MAX_AGE = 3600  # seconds a consent URL stays usable
HEADLESS_NONCE = "connect_nonce"  # kept in secrets: one-time, for CLI consent URLs


class ConnectStateError(Exception):
    """The ``state`` of a Google OAuth callback is forged, expired or not ours."""


def google_redirect_uri() -> str:
    """The callback registered for the OAuth client in Google Cloud."""
    return settings.PUBLIC_BASE_URL + reverse("delivery:google_callback")


@dataclass(frozen=True)
class ConnectState:
    app_id: str
    destination_id: int
    nonce: str
    headless: bool


def make_connect_state(destination, nonce: str, *, headless: bool) -> str:
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


def browser_connect_url(destination, session) -> str:
    """Consent URL for the browser flow; the nonce is bound to the user's session."""
    nonce = random_tokens.token_urlsafe(16)
    pending = dict(session.get("google_connect", {}))
    pending[nonce] = destination.pk
    session["google_connect"] = dict(list(pending.items())[-5:])
    state = make_connect_state(destination, nonce, headless=False)
    return oauth.authorization_url(google_redirect_uri(), state)


def claim_browser_nonce(session, state: ConnectState) -> bool:
    pending = dict(session.get("google_connect", {}))
    ok = pending.pop(state.nonce, None) == state.destination_id
    session["google_connect"] = pending
    return ok
