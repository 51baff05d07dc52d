"""Delivery engine services. PLACEHOLDER until the engine lands: callers rely
only on ``schedule_deliveries_for_session``."""

from __future__ import annotations


def schedule_deliveries_for_session(session_id: int, ready_types: set[str] | None = None) -> None:
    """Create (idempotently) a Delivery for every enabled destination of the
    session's project whose chosen file types are now ready, and wake a
    worker after commit. ``ready_types`` limits it to file types that just
    became ready (e.g. {"live"} on a live upload, everything after
    processing). Safe to call repeatedly."""
