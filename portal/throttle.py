"""Counting failed credential checks in Django's cache, shared by every
gunicorn worker (the database cache by default, Redis when ``REDIS_URL`` is
set; see ``CACHES`` in settings).

A fixed window starts at the first failure of a key; once ``limit``
failures are counted the key is refused until the window ends. Keys are
hashed, so a client-chosen APP_ID of any length or character makes a valid
cache key.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import TypeVar

from django.core.cache import cache

logger = logging.getLogger(__name__)
T = TypeVar("T")


def shared_cache(call: Callable[[], T], default: T) -> T:
    """Run one cache operation. An unreachable cache (Redis down, a missing
    cache table) turns throttling off with an error in the log, instead of
    answering every API call with a 500; `manage.py check` names the cause."""
    try:
        return call()
    except Exception as exc:  # redis.ConnectionError, DatabaseError, ...
        logger.error(
            "The shared cache failed (%s); throttling is off until it answers",
            type(exc).__name__,
        )
        return default


class FailureThrottle:
    def __init__(self, name: str, *, limit: int, window_seconds: int):
        self.name = name
        self.limit = limit
        self.window_seconds = window_seconds

    def _key(self, parts: tuple[str, ...]) -> str:
        digest = hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
        return f"throttle:{self.name}:{digest}"

    def is_throttled(self, *parts: str) -> bool:
        if self.limit <= 0:
            return False
        count = shared_cache(lambda: cache.get(self._key(parts)), None) or 0
        return count >= self.limit

    def note_failure(self, *parts: str) -> int:
        """Count one failure and return the count in the current window."""
        return shared_cache(lambda: self._count(self._key(parts)), 0)

    def _count(self, key: str) -> int:
        if cache.add(key, 1, self.window_seconds):
            return 1
        try:
            return cache.incr(key)
        except ValueError:  # expired between add() and incr()
            cache.add(key, 1, self.window_seconds)
            return 1

    def reset(self, *parts: str) -> None:
        shared_cache(lambda: cache.delete(self._key(parts)), None)
