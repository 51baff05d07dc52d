"""Reading an HTTP Basic ``Authorization`` header (RFC 7617), for the APIs
(APP_ID:APP_KEY) and the recording files (recording credentials) alike, and
asking for one."""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata


class MalformedCredentials(ValueError):
    """The header says Basic but does not hold base64 of UTF-8 ``user:password``."""


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(user, password) from the header; None when it is not Basic at all."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip()).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise MalformedCredentials("Malformed Basic credentials") from None
    user, _, password = decoded.partition(":")
    return user, password


_NOT_IN_REALM = re.compile(r'[^\x20-\x7e]|["\\]')


def basic_challenge(realm: str) -> str:
    """``WWW-Authenticate`` value for ``realm``. Browsers keep Basic credentials
    per origin and realm, so each protected area names itself (a project's
    recording credentials are never replayed to another project). The realm is
    reduced to printable ASCII without quotes or backslashes: it may come from a
    URL, and a header must not be broken out of or MIME-encoded by Django."""
    ascii_realm = unicodedata.normalize("NFKD", realm).encode("ascii", "ignore").decode()
    cleaned = _NOT_IN_REALM.sub("", ascii_realm)[:100].strip() or "Protected"
    return f'Basic realm="{cleaned}", charset="UTF-8"'
