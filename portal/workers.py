"""How a django-q2 worker process stops its current task when its cluster stops.

``manage.py qcluster`` (portal/management/commands/qcluster.py) sends SIGTERM to
its workers when it is asked to stop; systemd (``KillMode=control-group``) sends
it to them directly as well, and Ctrl-C in a terminal SIGINT. A worker then:

* raises ``WorkerStopping`` in a task that says it can be interrupted (media
  processing: the transcode is stopped and the session queued again);
* sets ``stopping`` for the others: a delivery sees it at its next chunk,
  hands its lease back and is woken again for another worker; a webhook send
  (a few seconds at most) finishes;
* and refuses tasks it has not started (they are queued again).

An idle worker just waits for django-q2's stop message.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

logger = logging.getLogger(__name__)

stopping = threading.Event()
# Tasks whose function may be interrupted anywhere by WorkerStopping.
INTERRUPTIBLE = {"recordings.tasks.process_session_task"}
_current: dict[str, str] = {}


class WorkerStopping(BaseException):  # noqa: N818 - not an error: a request to stop
    """Raised inside an interruptible task when its worker must stop. A
    BaseException so that ``except Exception`` handlers (which would record a
    failure) let it through; only the task's entry point catches it."""


def _on_stop_signal(signum: int, frame: Any) -> None:
    if stopping.is_set():
        return
    stopping.set()
    if _current.get("func") in INTERRUPTIBLE:
        raise WorkerStopping()


def on_worker_spawned(**kwargs: Any) -> None:
    """django-q2's post_spawn, in each new worker process."""
    from django_q.conf import Conf

    if Conf.SYNC:  # the task runs in the calling process (tests): leave its signals alone
        return
    stopping.clear()
    _current.clear()
    signal.signal(signal.SIGTERM, _on_stop_signal)
    # Ctrl-C in a terminal reaches every process of the group, ffmpeg included,
    # which then quits: the task must know it was a stop, not a broken file.
    signal.signal(signal.SIGINT, _on_stop_signal)


def on_task_start(*, task: dict, **kwargs: Any) -> None:
    """django-q2's pre_execute, in the worker, just before the task's function."""
    func = task.get("func")
    _current["func"] = func if isinstance(func, str) else getattr(func, "__qualname__", "")


def on_task_end(**kwargs: Any) -> None:
    """django-q2's post_execute_in_worker."""
    _current.clear()
