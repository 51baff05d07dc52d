"""What Google's answers mean for a delivery: each failure becomes a
TransferError saying what to fix, permanent or not; a revoked grant asks for
the Google account to be reconnected (``needs_reconnect``)."""

from __future__ import annotations

import http.client
import re

import httplib2
from google.auth.exceptions import GoogleAuthError, RefreshError
from googleapiclient.errors import HttpError

from portal import egress

from ..base import TransferError, refused_error

REVOKED_MESSAGE = "Google account access was revoked or expired: reconnect the Google account"
RATE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "backendError"}
FULL_REASONS = {"storageQuotaExceeded", "teamDriveFileLimitExceeded"}
NETWORK_ERRORS = (OSError, httplib2.HttpLib2Error, http.client.HTTPException)
DRIVE_ERRORS = (HttpError, GoogleAuthError, egress.OutboundRefused, *NETWORK_ERRORS)


class GoogleAccountError(TransferError):
    """A Google account must be (re)connected: the engine and the connection
    test record it (``needs_reconnect``) and the pages offer "Reconnect Google
    account"."""

    needs_reconnect = True

    def __init__(self, message: str):
        super().__init__(message, permanent=True)


class GoogleGrantRevoked(GoogleAccountError):
    def __init__(self, message: str = REVOKED_MESSAGE):
        super().__init__(message)


def translate(exc: Exception, what: str, account_email: str = "") -> TransferError:
    """A TransferError saying what to fix; never a URL (upload session URLs
    are credentials) nor a token."""
    refused = refused_error(exc)
    if refused is not None:
        return refused
    if isinstance(exc, RefreshError):
        data = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
        if data.get("error") == "invalid_client":
            return TransferError(
                "Google rejected this server's OAuth client: check GOOGLE_OAUTH_CLIENT_ID "
                "and GOOGLE_OAUTH_CLIENT_SECRET.",
                permanent=True,
            )
        if getattr(exc, "retryable", False):
            return TransferError(f"Google's token service failed while {what}")
        return GoogleGrantRevoked()
    if isinstance(exc, GoogleAuthError):
        return TransferError(
            f"Could not reach Google's token service while {what} ({type(exc).__name__})."
        )
    if isinstance(exc, HttpError):
        return _translate_http(exc, what, account_email)
    return TransferError(
        f"Lost the connection to Google Drive while {what} ({type(exc).__name__})."
    )

def _translate_http(exc: HttpError, what: str, account_email: str) -> TransferError:
    status = exc.resp.status
    details = exc.error_details if isinstance(exc.error_details, list) else []
    reason = next((d.get("reason") for d in details if isinstance(d, dict)), None) or ""
    # A Drive reason code, or nothing: the body's prose is not ours to show.
    reason = reason if re.fullmatch(r"[A-Za-z]{1,64}", str(reason)) else ""
    detail = f"HTTP {status}" + (f" {reason}" if reason else "")
    if status == 401:
        return GoogleGrantRevoked()
    if status == 429 or status >= 500 or reason in RATE_LIMIT_REASONS:
        return TransferError(f"Google Drive is busy ({detail}) while {what}.")
    if reason in FULL_REASONS:
        return TransferError(
            f"The Google Drive of {account_email or 'the connected account'} is full: "
            "free some space or add storage.",
            permanent=True,
        )
    if status == 404:
        return TransferError(
            f"Not found on Google Drive while {what}: was a folder deleted or moved to the bin?",
            permanent=True,
        )
    return TransferError(f"Google Drive refused {what} ({detail}).", permanent=True)
