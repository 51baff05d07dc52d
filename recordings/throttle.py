"""Throttling of repeated failed HTTP Basic logins on protected recording files.

Failures are counted per client address (``projects.audit.client_ip``: the
X-Real-IP of the documented nginx, trusted only from loopback) in the cache
every gunicorn worker shares, in a fixed window that starts at the first
failure.
"""

from __future__ import annotations

from portal.throttle import FailureThrottle

FAILURE_LIMIT = 20
WINDOW_SECONDS = 300

_failures = FailureThrottle("recording-basic", limit=FAILURE_LIMIT, window_seconds=WINDOW_SECONDS)


def is_throttled(ip: str | None) -> bool:
    return bool(ip) and _failures.is_throttled(ip or "")


def note_failure(ip: str | None) -> int:
    """Count one failed login from ``ip`` and return the count in the window."""
    return _failures.note_failure(ip) if ip else 0


def reset(ip: str | None) -> None:
    if ip:
        _failures.reset(ip)
