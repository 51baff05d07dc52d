"""django-q2 tasks of the recordings app; they take ids and call services."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from portal import workers
from portal.queues import enqueue_after_commit

from . import retention
from .models import Session
from .processing import MAX_PROCESSING_ATTEMPTS, give_up, process_session

log = logging.getLogger(__name__)


def process_session_task(session_id: int) -> str:
    # A stopping worker (portal/workers.py) gives the session to another one
    # instead of leaving it "processing" until the stalled sweep finds it.
    if workers.stopping.is_set():
        queue_processing(session_id)
        return "queued again: the worker is stopping"
    try:
        return process_session(session_id).state
    except workers.WorkerStopping:
        log.info("worker stopping: session %s queued for processing again", session_id)
        # A clean stop is the operator's doing, not the media's: the run does
        # not count towards MAX_PROCESSING_ATTEMPTS (a kill still does).
        Session.objects.filter(pk=session_id, processing_attempts__gt=0).update(
            processing_attempts=F("processing_attempts") - 1
        )
        queue_processing(session_id)
        return "queued again: the worker stopped"


def queue_processing(session_id: int) -> None:
    """Hand the session to the media-processing cluster after commit
    (portal/queues.py)."""
    enqueue_after_commit("recordings.tasks.process_session_task", session_id, processing=True)


def requeue_stalled_processing() -> int:
    """Queue processing again for sessions stuck in ``processing``.

    A worker killed mid-composite leaves its session in ``processing``. A live
    task is stopped by django-q2 after Q_CLUSTER["timeout"], so a session still
    processing after Q_CLUSTER["retry"] (which is longer) has no worker left.
    Processing is idempotent (``process_session`` finishes a session once)."""
    stalled_since = timezone.now() - timedelta(seconds=settings.Q_CLUSTER["retry"])
    # processed_at marks the start of the last run or re-queue while a session
    # is processing (and the end of processing afterwards); ended_at is never
    # touched.
    stalled = list(
        Session.objects.filter(state=Session.State.PROCESSING)
        .filter(
            Q(processed_at__isnull=True, ended_at__lt=stalled_since)
            | Q(processed_at__lt=stalled_since)
        )
        .values_list("pk", "conf_num", "processing_attempts")[:100]
    )
    for pk, conf_num, attempts in stalled:
        if attempts >= MAX_PROCESSING_ATTEMPTS:
            log.warning("session %s stalled in %d processing runs; failing it", conf_num, attempts)
            with transaction.atomic():
                session = Session.objects.select_for_update().get(pk=pk)
                if session.state == Session.State.PROCESSING:
                    give_up(session)
            continue
        log.warning("session %s has been processing since before %s; queuing it again",
                    conf_num, stalled_since.isoformat(timespec="seconds"))  # fmt: skip
        # Restart the clock so the session is not queued again before the
        # new task had its full time.
        Session.objects.filter(pk=pk, state=Session.State.PROCESSING).update(
            processed_at=timezone.now()
        )
        queue_processing(pk)
    return len(stalled)


def expire_waiting_recorders() -> int:
    """Fail live-recording/streaming requests that waited longer than
    LIVE_RECORDING_MAX_WAIT_SECONDS (7080 / 7081; also checked whenever the
    session's state is read) and start waiting ones if slots freed without a
    stop. Scheduled every minute (migration 0008)."""
    from .actions.recorders import do_expire_waiting_recorders

    return do_expire_waiting_recorders(acting_user=None)


def run_retention() -> int:
    """Every hour (schedule "recordings-retention"): remove recording files
    older than RECORDING_RETENTION_HOURS."""
    count = retention.expire_old_files()
    if count:
        log.info("Retention removed %d recording files", count)
    return count
