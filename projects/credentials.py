"""Checking hashed credentials fast enough for per-request HTTP Basic auth.

App keys and recording passwords are stored with Django's password hashers
(PBKDF2, deliberately slow). A player seeking through a video makes many
requests, so a successful check is remembered for a few minutes in process
memory, keyed by an HMAC of (stored hash, password): the plain password is
never kept, and changing the password changes the hash, which invalidates
the entry at once.

Failed checks are remembered for a shorter time in the cache every gunicorn
worker shares (database or Redis, see ``CACHES``): a client that repeats a
wrong key (a misconfigured script, or someone hammering the API) would
otherwise cost a full PBKDF2 run per request in each worker.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time

from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.core.cache import cache

from portal.throttle import shared_cache

_TTL_SECONDS = 300
_FAILED_TTL_SECONDS = 60
_MAX_ENTRIES = 10_000
_verified: dict[str, float] = {}
_lock = threading.Lock()


def _cache_key(raw: str, encoded: str) -> str:
    return hmac.new(
        settings.SECRET_KEY.encode(), f"{encoded}\0{raw}".encode(), hashlib.sha256
    ).hexdigest()


def cached_check(raw: str, encoded: str) -> bool:
    return checked(raw, encoded)[0]


def remembered(raw: str, encoded: str) -> bool:
    """True when this process verified the pair recently: free, no query."""
    if not raw or not encoded:
        return False
    with _lock:
        return _verified.get(_cache_key(raw, encoded), 0) > time.monotonic()


def checked(raw: str, encoded: str) -> tuple[bool, bool]:
    """(matches, hashed): ``hashed`` says whether this call ran the slow
    hasher, i.e. cost the server a PBKDF2 run (what the APP_KEY failure
    throttle counts; a remembered answer is free)."""
    if not raw or not encoded:
        return False, False
    key = _cache_key(raw, encoded)
    now = time.monotonic()
    with _lock:
        if _verified.get(key, 0) > now:
            return True, False
    failed_key = f"credentials:failed:{key}"
    if shared_cache(lambda: cache.get(failed_key), None):
        return False, False
    ok = check_password(raw, encoded)
    if not ok:
        shared_cache(lambda: cache.set(failed_key, 1, _FAILED_TTL_SECONDS), None)
        return False, True
    with _lock:
        if len(_verified) >= _MAX_ENTRIES:
            _verified.clear()
        _verified[key] = now + _TTL_SECONDS
    return True, True
