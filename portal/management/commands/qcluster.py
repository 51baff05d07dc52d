"""``manage.py qcluster`` that stops within STOP_SECONDS on SIGTERM or SIGINT,
whether the signal reaches this process alone (``kill``, systemd's
``KillMode=mixed``) or its whole process group (``KillMode=control-group``,
Ctrl-C in a terminal).

django-q2's own command stops the cluster from inside its signal handler. When
the whole group gets SIGTERM, its sentinel process (SIGTERM left at the
default action) dies while it may hold the lock of the cluster's stop event,
and the main process then waits on that lock for ever (django-q2 issue #346;
reproduced here: "stopping" logged, never exits). So here:

* the sentinel, the pusher and the monitor ignore SIGTERM, and the handler of
  this process only records the request;
* the main loop then sets the stop event itself and sends SIGTERM to the
  workers, which stop their current task (portal/workers.py: a delivery hands
  back its lease, a transcode is queued again);
* anything still alive after STOP_SECONDS is killed, so a stop never hangs.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import psutil
from django.conf import settings
from django_q import cluster as q_cluster
from django_q.conf import logger
from django_q.management.commands.qcluster import Command as QClusterCommand

# systemd's TimeoutStopSec in deploy/ must stay above this.
STOP_SECONDS = 25


class _Sentinel(q_cluster.Sentinel):
    """django-q2's sentinel; it and the pusher and monitor it forks ignore
    SIGTERM, and stop through the cluster's stop event instead."""

    def start(self) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        super().start()


class Command(QClusterCommand):
    help = "Start a django-q2 cluster that stops cleanly on SIGTERM / SIGINT."

    def handle(self, *args: Any, **options: Any) -> None:
        settings.SECRET_KEY  # signing needs it; fail before forking  # noqa: B018
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        q_cluster.Sentinel = _Sentinel  # type: ignore[misc]  # the class Cluster.start forks
        cluster = q_cluster.Cluster()
        requested = threading.Event()

        def on_signal(signum: int, frame: Any) -> None:
            requested.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        cluster.start()
        if options.get("run_once"):
            requested.set()
        while not requested.wait(1):
            if not cluster.sentinel.is_alive():
                logger.error("Q Cluster %s: the sentinel died; exiting", cluster.name)
                raise SystemExit(1)
        self.stop(cluster)

    def stop(self, cluster: q_cluster.Cluster) -> None:
        started = time.monotonic()
        logger.info("Q Cluster %s stopping (at most %d s).", cluster.name, STOP_SECONDS)
        sentinel = cluster.sentinel
        if sentinel.is_alive():
            cluster.stop_event.set()
            # The sentinel leaves its guard loop within one cycle; after that it
            # no longer replaces workers that end.
            time.sleep(float(q_cluster.Conf.GUARD_CYCLE) + 0.5)
            for worker in _children(sentinel.pid):
                _signal(worker, signal.SIGTERM)
            sentinel.join(max(0.0, STOP_SECONDS - (time.monotonic() - started)))
        if sentinel.is_alive():
            logger.warning("Q Cluster %s did not stop in %d s; killing it", cluster.name,
                           STOP_SECONDS)  # fmt: skip
            for process in [*_children(sentinel.pid, recursive=True), psutil.Process(sentinel.pid)]:
                _signal(process, signal.SIGKILL)
            sentinel.join(5)
            raise SystemExit(1)
        logger.info("Q Cluster %s has stopped in %.1f s.", cluster.name,
                    time.monotonic() - started)  # fmt: skip


def _children(pid: int, *, recursive: bool = False) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=recursive)
    except psutil.NoSuchProcess:
        return []


def _signal(process: psutil.Process, signum: int) -> None:
    try:
        process.send_signal(signum)
    except psutil.NoSuchProcess:
        pass
