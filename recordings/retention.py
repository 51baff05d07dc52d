"""Retention: files stay on the portal's storage for RECORDING_RETENTION_HOURS
(0 keeps them), then their bytes are removed and the row is marked expired so
the report and the Archive API say so instead of showing a dead link.

A file is kept while a delivery of it is still to happen (pending, uploading,
or retrying) and while its session is still live or being processed, but
only for the retention period: a session left ``live`` (never ended by the
media server) or ``processing`` longer than that is marked failed as
abandoned and its files expire like the others, so a forgotten session can
neither keep files forever nor hold a PROJECT_MAX_LIVE_SESSIONS slot.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, F, OuterRef, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from . import store
from .models import RecordingFile, Session

logger = logging.getLogger(__name__)

BATCH = 500
SCHEDULE_NAME = "recordings-retention"


def expirable_files(now: datetime):
    from delivery.models import DeliveredFile, Delivery

    cutoff = now - timedelta(hours=settings.RECORDING_RETENTION_HOURS)
    busy_delivery = DeliveredFile.objects.filter(
        recording_file=OuterRef("pk"),
        delivery__state__in=[
            Delivery.State.QUEUED,
            Delivery.State.RUNNING,
            Delivery.State.RETRY_WAIT,
        ],
    ).exclude(state__in=[DeliveredFile.State.VERIFIED, DeliveredFile.State.FAILED])
    return (
        RecordingFile.objects.filter(expired_at__isnull=True, created_at__lt=cutoff)
        .exclude(session__in=_sessions_in_progress(cutoff))
        .exclude(Exists(busy_delivery))
        .order_by("created_at", "id")
    )


def _sessions_in_progress(cutoff: datetime):
    """Live or processing, and not for longer than retention (a live session
    counts from its start, a processing one from its end)."""
    live = Q(state=Session.State.LIVE, started_at__gte=cutoff)
    processing = Q(state=Session.State.PROCESSING) & (
        Q(ended_at__gte=cutoff) | Q(ended_at__isnull=True, started_at__gte=cutoff)
    )
    return Session.objects.filter(live | processing).values("pk")


def fail_abandoned_sessions(now: datetime) -> int:
    """Sessions live or processing for longer than retention: failed, with
    the reason in the portal's words."""
    cutoff = now - timedelta(hours=settings.RECORDING_RETENTION_HOURS)
    abandoned = Session.objects.filter(
        state__in=[Session.State.LIVE, Session.State.PROCESSING]
    ).exclude(pk__in=_sessions_in_progress(cutoff))
    hours = settings.RECORDING_RETENTION_HOURS
    return abandoned.update(
        state=Session.State.FAILED,
        ended_at=Coalesce(F("ended_at"), Value(now)),
        processing_error=f"Abandoned: still live or processing after {hours} hours "
        "(RECORDING_RETENTION_HOURS); its files expired with the others.",
    )


def expire_old_files(now: datetime | None = None) -> int:
    """Mark files past retention expired, then remove their bytes; returns how
    many. Marking first, with the rule re-checked in the UPDATE, means a
    delivery queued in between keeps its file."""
    if settings.RECORDING_RETENTION_HOURS <= 0:
        return 0
    now = now or timezone.now()
    if failed := fail_abandoned_sessions(now):
        logger.warning("Retention marked %d abandoned sessions failed", failed)
    done = 0
    while True:
        ids = list(expirable_files(now).values_list("id", flat=True)[:BATCH])
        if not ids:
            return done
        expirable_files(now).filter(pk__in=ids).update(expired_at=now)
        marked = RecordingFile.objects.filter(pk__in=ids, expired_at=now)
        folders = {}
        for pk, session_id, *paths in marked.values_list(
            "id", "session_id", "storage_path", "poster_path"
        ):
            for path in paths:
                if path:
                    _remove(path, f"file {pk}")
                    # app/room/conf: an upload to a bucket is one folder deeper
                    # (app/room/conf/<key>/name, see do_store_file).
                    if path.count("/") >= 3:
                        folders[session_id] = "/".join(path.split("/")[:3])
            done += 1
        _sweep_emptied_sessions(folders)


def _remove(name: str, what: str) -> None:
    try:
        store.delete(name)  # a missing file is not an error
    except Exception as exc:  # OSError, or a bucket's (botocore) error
        logger.warning("Retention could not remove %s of %s: %s", name, what, exc)


def _sweep_emptied_sessions(folders: dict[int, str]) -> None:
    """Once every file of a session has expired, remove whatever else is left
    in its folder of the store: bytes a worker killed between storing a file
    and committing its row (e.g. a composite) left behind with no row."""
    live = set(
        RecordingFile.objects.filter(session_id__in=folders, expired_at__isnull=True)
        .values_list("session_id", flat=True)
        .distinct()
    )
    for session_id, folder in folders.items():
        if session_id not in live and folder.count("/") == 2:  # app/room/conf
            for name in list(store.listing(folder)):
                _remove(name, f"session {session_id} (no row)")

