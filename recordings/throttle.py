"""Throttling of repeated failed HTTP Basic logins on protected recording files.

Failures are counted per client address in Django's cache, in a fixed window
that starts at the first failure. The default cache (local memory) is per
process; with several gunicorn workers configure a shared cache (database or
Redis) so the limit holds across processes (see README).
"""

from __future__ import annotations

from django.core.cache import cache

FAILURE_LIMIT = 20
WINDOW_SECONDS = 300

_KEY = "recordings:basic-failures:{ip}"


def is_throttled(ip: str | None) -> bool:
    if not ip:
        return False
    return (cache.get(_KEY.format(ip=ip)) or 0) >= FAILURE_LIMIT


def note_failure(ip: str | None) -> int:
    """Count one failed login from ``ip`` and return the count in the window."""
    if not ip:
        return 0
    key = _KEY.format(ip=ip)
    if cache.add(key, 1, WINDOW_SECONDS):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add() and incr()
        cache.add(key, 1, WINDOW_SECONDS)
        return 1


def reset(ip: str | None) -> None:
    if ip:
        cache.delete(_KEY.format(ip=ip))
