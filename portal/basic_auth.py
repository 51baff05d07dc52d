"""Reading an HTTP Basic ``Authorization`` header (RFC 7617), for the APIs
(APP_ID:APP_KEY) and the recording files (recording credentials) alike."""

from __future__ import annotations

import base64
import binascii


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
