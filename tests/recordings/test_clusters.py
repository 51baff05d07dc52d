"""Which queue each task lands on. Media processing has its own django-q2
cluster (Q_CLUSTER_NAME=processing); deliveries and webhook sends must go to
the default cluster even when queued from inside a processing worker (the end
of processing hands files to delivery and sends the `transcoded` webhook)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django_q.conf import Conf
from django_q.models import OrmQ

from delivery.scheduling import wake
from portal.queues import enqueue_after_commit
from recordings.tasks import queue_processing

ROOT = Path(__file__).resolve().parents[2]


def queued() -> list[tuple[str, str]]:
    """(queue key, task function) of every queued task."""
    return sorted((row.key, row.task["func"]) for row in OrmQ.objects.all())


@pytest.mark.parametrize("caller", ["portal", "processing"])
def test_each_task_lands_on_its_clusters_queue_whoever_queues_it(
    db, monkeypatch, django_capture_on_commit_callbacks, caller
):
    # A process started with Q_CLUSTER_NAME=processing has this cluster name;
    # django-q2 queues a task without a cluster on the caller's own cluster.
    monkeypatch.setattr(Conf, "CLUSTER_NAME", caller)
    monkeypatch.setattr(Conf, "SYNC", False)
    with django_capture_on_commit_callbacks(execute=True):
        wake(101)
        enqueue_after_commit("webhooks.tasks.send_message_task", 202)
        queue_processing(303)
    assert queued() == [
        ("portal", "delivery.tasks.run_delivery"),
        ("portal", "webhooks.tasks.send_message_task"),
        ("processing", "recordings.tasks.process_session_task"),
    ]


def test_the_processing_cluster_has_its_own_queue_and_workers_and_the_same_timeouts(tmp_path):
    code = (
        "import django, json; django.setup();"
        "from django_q.conf import Conf; from django_q.brokers import get_broker;"
        "print(json.dumps([Conf.CLUSTER_NAME, Conf.PREFIX, Conf.WORKERS, Conf.TIMEOUT,"
        " Conf.RETRY, get_broker().list_key]))"
    )
    # Its own SQLite in tmp_path, not the test run's database.
    inherited = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env = {**inherited, "DJANGO_SETTINGS_MODULE": "portal.settings", "PORTAL_TESTING": "1",
           "Q_CLUSTER_NAME": "processing", "Q_PROCESSING_WORKERS": "3", "DATA_DIR": str(tmp_path)}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=False,
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
    name, prefix, workers, timeout, retry, key = json.loads(out.stdout.strip().splitlines()[-1])
    assert (name, key, workers) == ("processing", "processing", 3)
    # Same signing salt as the default cluster, and the timeout/retry the
    # stalled-processing sweep reads from Q_CLUSTER.
    assert prefix == settings.Q_CLUSTER["name"] == "portal"
    assert (timeout, retry) == (settings.Q_CLUSTER["timeout"], settings.Q_CLUSTER["retry"])
