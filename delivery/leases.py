"""Leases on Delivery rows: who may work on a delivery now, and when a
failed one is tried again.

A claim is a conditional UPDATE (state due, or running with a dead lease), so
exactly one of several concurrent workers wins on SQLite and PostgreSQL
alike; on PostgreSQL ``select_for_update(skip_locked=True)`` first lets
workers pass over a row another is claiming instead of queueing behind it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from .models import Delivery

logger = logging.getLogger(__name__)

State = Delivery.State
T = TypeVar("T")
# What a database restart or failover raises on a connection that was open.
DB_ERRORS = (OperationalError, InterfaceError)


def new_lease_owner() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def due(now: datetime) -> Q:
    """Rows a worker may take now: waiting and due, or running with a dead lease."""
    waiting = Q(state__in=[State.QUEUED, State.RETRY_WAIT]) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )
    abandoned = Q(state=State.RUNNING) & (
        Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True)
    )
    return waiting | abandoned


def lease_seconds() -> int:
    return int(settings.DELIVERY_LEASE_SECONDS)


def claim(delivery_id: int, owner: str) -> bool:
    """Take the delivery for ``owner`` if it is due. Exactly one concurrent
    caller gets True."""
    now = timezone.now()
    try:
        with transaction.atomic():
            # On PostgreSQL, skip a row another worker is claiming instead of
            # queueing behind it; SQLite serialises writers anyway.
            locked = Delivery.objects.select_for_update(skip_locked=True).filter(
                due(now), pk=delivery_id
            )
            if not list(locked.values_list("pk", flat=True)):
                return False
            updated = Delivery.objects.filter(due(now), pk=delivery_id).update(
                state=State.RUNNING,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_seconds()),
                heartbeat_at=now,
                started_at=now,
                attempts=F("attempts") + 1,
                next_attempt_at=None,
            )
    except OperationalError as exc:
        # SQLite: another writer holds the database past the busy timeout. The
        # row stays due, so the sweep offers it again; nothing is lost.
        if "locked" not in str(exc):
            raise
        logger.info("delivery %s: database busy; leaving the claim to a later wake", delivery_id)
        return False
    return updated == 1


def hand_back(delivery_id: int, owner: str) -> bool:
    """Give a running delivery back (its worker is stopping): queued and due
    at once, for the next worker to claim and resume."""
    return (
        Delivery.objects.filter(pk=delivery_id, state=State.RUNNING, lease_owner=owner).update(
            state=State.QUEUED, lease_owner="", lease_expires_at=None, next_attempt_at=None
        )
        == 1
    )


def backoff(attempts: int) -> timedelta:
    """Delay after the ``attempts``-th failed attempt: base, doubling, capped."""
    base = int(settings.DELIVERY_RETRY_BASE_SECONDS)
    cap = int(settings.DELIVERY_RETRY_MAX_SECONDS)
    return timedelta(seconds=min(cap, base * 2 ** max(0, min(attempts - 1, 30))))


def due_delivery_ids(limit: int = 200, *, lost_wakes: bool = True) -> list[int]:
    """Deliveries a sweep should wake: retries that are due, rows whose worker
    died during its lease, and (with ``lost_wakes``) queued rows whose wake-up
    got lost."""
    now = timezone.now()
    grace = timedelta(seconds=60)
    retry = Q(state=State.RETRY_WAIT, next_attempt_at__lte=now)
    abandoned = Q(state=State.RUNNING) & (
        Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True)
    )
    due = retry | abandoned
    if lost_wakes:
        due |= Q(state=State.QUEUED) & (
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now - grace)
        )
    rows = Delivery.objects.filter(due).order_by("next_attempt_at", "id")
    return list(rows.values_list("pk", flat=True)[:limit])


def drop_broken_connection() -> None:
    """Forget this thread's connection after a database error. Django keeps
    reusing a connection the server closed (outside the request cycle nothing
    calls close_old_connections), so without this every later query of a
    long-running worker fails even once the database is back."""
    with contextlib.suppress(*DB_ERRORS):
        connection.close()


def patiently(step: Callable[[], T], what: str, budget: float | None = None) -> T:
    """Run ``step`` (a short database step outside any transaction) again
    while the database is unreachable, for up to ``budget`` seconds (the
    lease by default): a restart takes seconds, and giving up would leave the
    row to wait for its lease to run out although the work is done."""
    deadline = time.monotonic() + (lease_seconds() if budget is None else budget)
    delay = 0.25
    while True:
        try:
            return step()
        except DB_ERRORS as exc:
            if connection.in_atomic_block or time.monotonic() + delay > deadline:
                raise
            logger.warning("%s: database unavailable (%s); trying again", what, exc)
            drop_broken_connection()
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
