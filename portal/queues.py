"""Which django-q2 cluster runs what, and the one way work is queued for each:
``enqueue_after_commit``.

``manage.py qcluster`` runs the default cluster: deliveries, webhook sends and
every schedule. ``Q_CLUSTER_NAME=processing manage.py qcluster`` runs media
processing only (``settings.PROCESSING_CLUSTER``, django-q2's ALT_CLUSTERS), so
a transcode never holds up a delivery or a webhook: each cluster has its own
queue (the ORM broker keys its rows by cluster name, Redis uses one list each).

Every task names its cluster. Without one, django-q2 queues on the cluster of
the *calling* process: a webhook or delivery queued by a processing task would
otherwise land on the processing queue, behind the next transcode.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)


def enqueue_after_commit(
    func: str, *args: Any, processing: bool = False, task_name: str | None = None
) -> None:
    """Queue ``func(*args)`` once the current transaction commits (at once
    outside one), so a worker never looks for rows that are not committed
    yet or were rolled back. ``processing`` puts it on the media-processing
    cluster. A broker that refuses is logged, not raised: every task's work
    is also found by its app's sweep (migrations' schedules)."""

    def send() -> None:
        try:
            if processing:
                enqueue_processing(func, *args, task_name=task_name)
            else:
                enqueue(func, *args, task_name=task_name)
        except Exception:
            log.warning("Could not queue %s%r; its sweep will pick the work up", func, args)

    transaction.on_commit(send)


def enqueue(func: str, *args: Any, **options: Any) -> str:
    """Queue ``func`` on the default (delivery and webhook) cluster now.
    Prefer ``enqueue_after_commit``."""
    from django_q.tasks import async_task

    return async_task(func, *args, cluster=settings.Q_CLUSTER["name"], **options)


def enqueue_processing(func: str, *args: Any, **options: Any) -> str:
    """Queue ``func`` on the media-processing cluster now. Prefer
    ``enqueue_after_commit(..., processing=True)``."""
    from django_q.tasks import async_task

    return async_task(func, *args, cluster=settings.PROCESSING_CLUSTER, **options)
