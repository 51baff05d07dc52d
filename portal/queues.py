"""Which django-q2 cluster runs what, and the one way work is queued for each.

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

from typing import Any

from django.conf import settings


def enqueue(func: str, *args: Any, **options: Any) -> str:
    """Queue ``func`` on the default (delivery and webhook) cluster."""
    from django_q.tasks import async_task

    return async_task(func, *args, cluster=settings.Q_CLUSTER["name"], **options)


def enqueue_processing(func: str, *args: Any, **options: Any) -> str:
    """Queue ``func`` on the media-processing cluster."""
    from django_q.tasks import async_task

    return async_task(func, *args, cluster=settings.PROCESSING_CLUSTER, **options)
