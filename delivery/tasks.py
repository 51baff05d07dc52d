"""django-q2 entry points. They take ids and call the engine; the database
row, not the queue, decides what runs."""

from __future__ import annotations

import logging

from . import engine, leases

logger = logging.getLogger(__name__)


def run_delivery(delivery_id: int) -> str:
    return engine.run_delivery(delivery_id)


def broker_is_idle() -> bool:
    from django_q.brokers import get_broker

    try:
        return get_broker().queue_size() == 0
    except Exception:  # an unreachable broker: rather wake twice than never
        logger.warning("could not read the task queue size; waking queued deliveries anyway")
        return True


def sweep() -> int:
    """Every minute (schedule made by migration 0003): wake deliveries whose
    retry is due, whose worker died holding the lease, or whose wake-up was
    lost. Waking a row twice is harmless: only one claim succeeds."""
    from .scheduling import complete_waiting, wake

    complete_waiting()
    # A queued row's wake-up can only be lost when the broker holds nothing
    # ready to run; otherwise it is just waiting for a free worker, and waking
    # a backlog again every minute would only grow the queue.
    ids = leases.due_delivery_ids(lost_wakes=broker_is_idle())
    for delivery_id in ids:
        wake(delivery_id)
    if ids:
        logger.info("delivery sweep woke %d deliveries", len(ids))
    return len(ids)
