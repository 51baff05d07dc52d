"""What the recorder pool looks like to a project: slots in use, the queue's
length across the deployment and the project's own live recordings and
streams. Read-only; changes are ``recordings.actions.recorders``."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from projects.models import Project

from .actions.recorders import RULES, Kind, slots_in_use
from .models import RecorderRequest

Request = RecorderRequest.State


@dataclass
class PoolStatus:
    slots: int
    in_use: int
    waiting: int
    mine: list[dict] = field(default_factory=list)

    @property
    def max_wait_minutes(self) -> int:
        return max(1, round(settings.LIVE_RECORDING_MAX_WAIT_SECONDS / 60))


def pool_status(project: Project) -> PoolStatus:
    """Slots in use and the queue's length across the deployment; the
    project's own live recordings and streams (others' are not its business)."""
    waiting_ids = list(
        RecorderRequest.objects.filter(state=Request.WAITING).order_by("id")
        .values_list("id", flat=True)
    )  # fmt: skip
    position = {pk: index + 1 for index, pk in enumerate(waiting_ids)}
    mine = [
        {
            "kind": RULES[Kind(kind)].noun.capitalize(),
            "state": state,
            "position": position.get(pk),
            "conf_num": conf_num,
            "room": room_name,
            "since": started_at or requested_at,
        }
        for pk, kind, state, conf_num, room_name, requested_at, started_at in (
            RecorderRequest.objects.filter(project=project, state__in=RecorderRequest.OPEN_STATES)
            .order_by("id")
            .values_list(
                "pk",
                "kind",
                "state",
                "session__conf_num",
                "session__room__name",
                "requested_at",
                "started_at",
            )
        )  # fmt: skip
    ]
    return PoolStatus(settings.LIVE_RECORDING_SLOTS, slots_in_use(), len(waiting_ids), mine)
