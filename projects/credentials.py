"""Checking hashed credentials fast enough for per-request HTTP Basic auth.

App keys and recording passwords are stored with Django's password hashers
(PBKDF2, deliberately slow). A player seeking through a video makes many
requests, so a successful check is remembered for a few minutes in process
memory, keyed by an HMAC of (stored hash, password): the plain password is
never kept, and changing the password changes the hash, which invalidates
the entry at once.

Failed checks are remembered the same way for a shorter time: a client that
repeats a wrong key (a misconfigured script, or someone hammering the API)
would otherwise cost a full PBKDF2 run per request.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time

from django.conf import settings
from django.contrib.auth.hashers import check_password

_TTL_SECONDS = 300
_FAILED_TTL_SECONDS = 60
_MAX_ENTRIES = 10_000
_verified: dict[str, float] = {}
_failed: dict[str, float] = {}
_lock = threading.Lock()


def _cache_key(raw: str, encoded: str) -> str:
    return hmac.new(
        settings.SECRET_KEY.encode(), f"{encoded}\0{raw}".encode(), hashlib.sha256
    ).hexdigest()


def cached_check(raw: str, encoded: str) -> bool:
    if not raw or not encoded:
        return False
    key = _cache_key(raw, encoded)
    now = time.monotonic()
    with _lock:
        if _verified.get(key, 0) > now:
            return True
        if _failed.get(key, 0) > now:
            return False
    ok = check_password(raw, encoded)
    with _lock:
        remembered, ttl = (_verified, _TTL_SECONDS) if ok else (_failed, _FAILED_TTL_SECONDS)
        if len(remembered) >= _MAX_ENTRIES:
            remembered.clear()
        remembered[key] = now + ttl
    return ok
