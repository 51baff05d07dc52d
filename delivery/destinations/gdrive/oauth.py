"""Connecting a Google account for Drive delivery (OAuth 2.0, web server flow).

The views of the "Connect Google account" button call, in order:

1. ``authorization_url(redirect_uri, state)`` and redirect the browser there.
   ``state`` is an unguessable value the view binds to the user's session and
   the project (and checks when Google redirects back).
2. ``exchange_code(redirect_uri, code, state)`` with the ``code`` and ``state``
   Google sent back; store ``ConnectedAccount.refresh_token`` as the destination's
   secret and ``.email`` as its ``account_email``.
3. ``revoke(refresh_token)`` when the administrator disconnects.

Deliveries use ``credentials_for(refresh_token)`` and ``drive_service(...)``;
access tokens are short-lived and refreshed automatically.

Only the ``drive.file`` scope is asked for: the portal sees the files and
folders it created, nothing else of the account. The account's email comes from
Drive's ``about.get(fields=user)``, which needs no extra scope.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from contextlib import suppress
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import requests
from django.conf import settings

from portal import egress
from portal.egress_http import GuardedHttp, guard_requests_session, guarded_session

from ..base import AccountConnectError

# The Google client libraries cost ~15 MB of memory; they are imported where
# they are used so web processes that never talk to Google stay small.
if TYPE_CHECKING:
    from google.oauth2.credentials import Credentials
    from google_auth_oauthlib.flow import Flow

DRIVE_FILE_SCOPE = "https://www.googleapis.com/auth/drive.file"
SCOPES = [DRIVE_FILE_SCOPE]
HTTP_TIMEOUT = 60


class GoogleOAuthError(AccountConnectError):
    """Connecting (or disconnecting) a Google account failed. The message is
    shown to the administrator and says what to do; it never holds a token."""


@dataclass(frozen=True)
class ConnectedAccount:
    email: str
    refresh_token: str = field(repr=False)


def _client_config() -> dict[str, Any]:
    if not settings.GOOGLE_OAUTH_CLIENT_ID or not settings.GOOGLE_OAUTH_CLIENT_SECRET:
        raise GoogleOAuthError(
            "Google Drive delivery is not set up on this server: "
            "set GOOGLE_OAUTH_CLIENT_ID and GOOGLE_OAUTH_CLIENT_SECRET."
        )
    from portal.checks import google_url_problems

    if problems := google_url_problems():
        # oauthlib would raise InsecureTransportError (a 500) on an http:// URI.
        raise GoogleOAuthError("Google Drive is misconfigured on this server: " + problems[0])
    return {
        "web": {
            "client_id": settings.GOOGLE_OAUTH_CLIENT_ID,
            "client_secret": settings.GOOGLE_OAUTH_CLIENT_SECRET,
            "auth_uri": settings.GOOGLE_OAUTH_AUTH_URI,
            "token_uri": settings.GOOGLE_OAUTH_TOKEN_URI,
        }
    }


def _code_verifier(state: str) -> str:
    """PKCE verifier derived from ``state`` with the server's secret key, so
    the views need not store it: only this server can compute it."""
    key = settings.SECRET_KEY.encode()
    digest = hmac.new(key, b"google-pkce:" + state.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _flow(redirect_uri: str, state: str) -> Flow:
    from google_auth_oauthlib.flow import Flow

    flow = Flow.from_client_config(
        _client_config(),
        scopes=SCOPES,
        redirect_uri=redirect_uri,
        state=state,
        code_verifier=_code_verifier(state),
    )
    # The token URI is a setting (a local double in tests): through the egress guard.
    guard_requests_session(flow.oauth2session)
    return flow


def authorization_url(redirect_uri: str, state: str, *, login_hint: str | None = None) -> str:
    """The Google consent page to send the administrator's browser to.

    Asks for offline access (a refresh token) and forces the consent screen so
    Google issues a new refresh token even if the account was connected before.
    ``redirect_uri`` must be registered for the OAuth client in Google Cloud.
    """
    extra = {"login_hint": login_hint} if login_hint else {}
    url, _state = _flow(redirect_uri, state).authorization_url(
        access_type="offline", prompt="consent", include_granted_scopes="true", **extra
    )
    return url


def exchange_code(redirect_uri: str, code: str, state: str) -> ConnectedAccount:
    """Trade the ``code`` from Google's redirect for a refresh token and the
    account's email. ``redirect_uri`` and ``state`` must be those given to
    ``authorization_url``. Raises GoogleOAuthError with what to do."""
    from oauthlib.oauth2.rfc6749.errors import OAuth2Error

    flow = _flow(redirect_uri, state)
    try:
        token = flow.fetch_token(code=code, timeout=HTTP_TIMEOUT)
    except Warning as changed:  # oauthlib: Google granted other scopes than asked
        token = getattr(changed, "token", None)
        if token is None:
            raise
    except OAuth2Error as exc:
        if exc.error == "invalid_client":
            raise GoogleOAuthError(
                "Google rejected this server's OAuth client: check GOOGLE_OAUTH_CLIENT_ID "
                "and GOOGLE_OAUTH_CLIENT_SECRET."
            ) from None
        raise GoogleOAuthError(
            f"Google refused the authorization ({exc.error}): it may have expired or been "
            "used already. Connect the Google account again."
        ) from None
    except requests.RequestException as exc:
        raise GoogleOAuthError(
            f"Could not reach Google's token endpoint ({type(exc).__name__}): try again."
        ) from None
    except egress.OutboundRefused as exc:
        raise GoogleOAuthError(f"Google's token endpoint was refused: {exc.message}") from None
    finally:
        flow.oauth2session.close()

    scopes = token.get("scope") or []
    scopes = scopes.split() if isinstance(scopes, str) else list(scopes)
    refresh_token = token.get("refresh_token")
    if DRIVE_FILE_SCOPE not in scopes:
        if refresh_token:
            with suppress(GoogleOAuthError):
                revoke(refresh_token)
        raise GoogleOAuthError(
            "Access to Google Drive was not granted: connect again and allow the portal "
            "to create and edit its own files in Google Drive."
        )
    if not refresh_token:
        raise GoogleOAuthError(
            "Google did not issue a refresh token: remove the portal's access at "
            "https://myaccount.google.com/permissions, then connect again."
        )
    creds = credentials_for(refresh_token, access_token=token.get("access_token"))
    return ConnectedAccount(email=account_email(creds), refresh_token=refresh_token)


def revoke(refresh_token: str) -> bool:
    """Revoke the grant at Google. True if revoked now, False if Google says it
    was already revoked or expired (nothing left to do)."""
    try:
        with guarded_session() as session:
            resp = session.post(
                settings.GOOGLE_OAUTH_REVOKE_URI,
                data={"token": refresh_token},  # in the body: tokens never go in URLs
                timeout=HTTP_TIMEOUT,
            )
    except egress.OutboundRefused as exc:
        raise GoogleOAuthError(f"Google's revocation endpoint was refused: {exc.message}") from None
    except requests.RequestException as exc:
        raise GoogleOAuthError(
            f"Could not reach Google to revoke access ({type(exc).__name__}): try again."
        ) from None
    if resp.status_code == 200:
        return True
    if resp.status_code == 400 and _json(resp).get("error") == "invalid_token":
        return False
    raise GoogleOAuthError(f"Google did not revoke access (HTTP {resp.status_code}): try again.")


def credentials_for(refresh_token: str, *, access_token: str | None = None) -> Credentials:
    """Credentials for Drive calls; the access token is fetched and refreshed
    on demand (google.auth.exceptions.RefreshError once the grant is revoked)."""
    from google.oauth2.credentials import Credentials

    return Credentials(
        token=access_token,
        refresh_token=refresh_token,
        token_uri=settings.GOOGLE_OAUTH_TOKEN_URI,
        client_id=settings.GOOGLE_OAUTH_CLIENT_ID,
        client_secret=settings.GOOGLE_OAUTH_CLIENT_SECRET,
        scopes=SCOPES,
    )


@cache
def _discovery_doc(api_base: str) -> str:
    """Drive v3's discovery document shipped with the client (no network),
    with its root URL moved to ``api_base``.

    ``build(client_options={"api_endpoint": ...})`` would move the API calls but
    only the host of upload URLs (``{rootUrl}upload/drive/v3/files``), keeping
    https; moving ``rootUrl`` moves both, whatever the scheme.
    """
    from googleapiclient.discovery_cache import get_static_doc

    doc = json.loads(get_static_doc("drive", "v3"))
    doc["rootUrl"] = api_base
    doc["mtlsRootUrl"] = api_base
    doc["baseUrl"] = api_base + doc["servicePath"]
    return json.dumps(doc)


def drive_service(credentials: Credentials, *, timeout: int = HTTP_TIMEOUT) -> Any:
    """A Drive v3 client at ``GOOGLE_DRIVE_API_BASE``. Not thread-safe (httplib2):
    one per thread."""
    from google_auth_httplib2 import AuthorizedHttp
    from googleapiclient.discovery import build_from_document

    api_base = settings.GOOGLE_DRIVE_API_BASE.rstrip("/") + "/"
    # Through the egress guard (the API base and token URI are settings);
    # Drive's 308 means "resume incomplete", not a redirect.
    http = GuardedHttp(timeout=timeout)
    http.redirect_codes = http.redirect_codes - {308}
    return build_from_document(
        _discovery_doc(api_base), http=AuthorizedHttp(credentials, http=http)
    )


def account_email(credentials: Credentials) -> str:
    """The email of the Google account behind ``credentials``."""
    from google.auth.exceptions import GoogleAuthError
    from googleapiclient.errors import HttpError

    service = drive_service(credentials)
    try:
        about = service.about().get(fields="user(emailAddress)").execute(num_retries=2)
    except GoogleAuthError as exc:
        raise GoogleOAuthError(
            f"Google did not accept the new grant ({type(exc).__name__}): connect again."
        ) from None
    except HttpError as exc:
        raise GoogleOAuthError(
            f"Could not read the Google account's email (HTTP {exc.resp.status}): connect again."
        ) from None
    except OSError as exc:
        raise GoogleOAuthError(
            f"Could not reach Google Drive ({type(exc).__name__}): try again."
        ) from None
    except egress.OutboundRefused as exc:
        raise GoogleOAuthError(f"Google Drive's address was refused: {exc.message}") from None
    finally:
        service.close()
    return about.get("user", {}).get("emailAddress", "")


def _json(resp: requests.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
