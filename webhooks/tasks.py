"""django-q2 tasks of the webhooks app: they take ids and call
``webhooks.sending``. The schedule row of the sweep names
``webhooks.tasks.sweep_due_messages`` (migration 0002 here).

No alias is kept at the old ``projects.tasks`` path: a send queued under it
before an upgrade fails to import once, its message stays due in the outbox
and the sweep sends it within a minute."""

from __future__ import annotations

import time

from . import outbox, sending


def send_message_task(message_pk: int) -> str:
    """Send a freshly queued message if it is still due."""
    logged = sending.attempt(message_pk)
    return "not due" if logged is None else f"status {logged.status_code or logged.error}"


def sweep_due_messages() -> int:
    """django-q2 schedule (every minute): send every message whose attempt is
    due, including ones whose sender's lease ran out. Bounded in time so a
    slow receiver cannot pile up overlapping sweeps."""
    started = time.monotonic()
    sent = 0
    for pk in outbox.due_message_ids():
        if time.monotonic() - started > outbox.SWEEP_BUDGET_SECONDS:
            break
        if sending.attempt(pk) is not None:
            sent += 1
    return sent
