"""Per-project quotas: rooms, bytes kept in the recording store, sessions live
at once (``PROJECT_MAX_ROOMS``, ``PROJECT_MAX_STORAGE_BYTES``,
``PROJECT_MAX_LIVE_SESSIONS``; 0 = unlimited).

One tenant must not fill the operator's disk or database for everyone. Each
check runs inside the caller's transaction after locking the project row, so
two requests racing for the last slot cannot both take it. The APIs answer
403 with the result code below in the JSON envelope; the pages show the
message as a form error.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Sum

from portal.sizes import human_size

from .models import Project


@dataclass
class QuotaExceeded(Exception):
    result: int
    message: str
    status: int = 403

    def __str__(self) -> str:
        return self.message


ROOMS_RESULT = 1041
STORAGE_RESULT = 1042
LIVE_SESSIONS_RESULT = 1043


def _lock(project: Project) -> None:
    Project.objects.select_for_update().filter(pk=project.pk).values_list("pk").first()


def check_room_quota(project: Project) -> None:
    limit = settings.PROJECT_MAX_ROOMS
    if limit <= 0:
        return
    _lock(project)
    if project.rooms.count() >= limit:
        raise QuotaExceeded(
            ROOMS_RESULT,
            f"This project has reached its limit of {limit} rooms (PROJECT_MAX_ROOMS); "
            "delete rooms it no longer uses, or ask the operator to raise the limit.",
        )


def stored_bytes(project: Project) -> int:
    """Bytes the project's files take in the recording store now (expired
    files are gone from it)."""
    from recordings.models import RecordingFile

    total = RecordingFile.objects.filter(project=project, expired_at__isnull=True).aggregate(
        total=Sum("size")
    )["total"]
    return total or 0


def check_storage_quota(project: Project, incoming: int) -> None:
    limit = settings.PROJECT_MAX_STORAGE_BYTES
    if limit <= 0:
        return
    _lock(project)
    used = stored_bytes(project)
    if used >= limit or used + max(incoming, 0) > limit:
        raise QuotaExceeded(
            STORAGE_RESULT,
            f"This project's recordings would take more than its {human_size(limit)} of storage "
            f"(PROJECT_MAX_STORAGE_BYTES; {human_size(used)} in use); files are freed after "
            "retention, or ask the operator to raise the limit.",
        )


def check_live_sessions_quota(project: Project) -> None:
    from recordings.models import Session

    limit = settings.PROJECT_MAX_LIVE_SESSIONS
    if limit <= 0:
        return
    _lock(project)
    if Session.objects.filter(project=project, state=Session.State.LIVE).count() >= limit:
        raise QuotaExceeded(
            LIVE_SESSIONS_RESULT,
            f"This project already has {limit} sessions live at once "
            "(PROJECT_MAX_LIVE_SESSIONS); end one before starting another.",
        )
