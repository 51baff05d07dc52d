"""django-q2 entry points. They take ids and call the engine; the database
row, not the queue, decides what runs."""

from __future__ import annotations

import logging

from . import engine, leases

logger = logging.getLogger(__name__)


def run_delivery(delivery_id: int) -> str:
    return engine.run_delivery(delivery_id)


def sweep() -> int:
    """Every minute (schedule made by migration 0003): wake deliveries whose
    retry is due, whose worker died holding the lease, or whose wake-up was
    lost. Waking a row twice is harmless: only one claim succeeds."""
    from .services import wake

    ids = leases.due_delivery_ids()
    for delivery_id in ids:
        wake(delivery_id)
    if ids:
        logger.info("delivery sweep woke %d deliveries", len(ids))
    return len(ids)
