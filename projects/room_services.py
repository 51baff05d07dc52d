"""State changes of rooms (Video API and the Rooms page share them)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from .models import Project, Room
from .quotas import check_room_quota
from .rooms import validate_room_settings

NAME_MAX = 200
OWNER_REF_MAX = 200


class RoomInUse(Exception):
    """The room has recorded sessions, so deleting it would delete recordings."""


def _check_text(value, field: str, limit: int, *, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationError({field: "must be a string"})
    value = value.strip()
    if required and not value:
        raise ValidationError({field: "is required"})
    if len(value) > limit:
        raise ValidationError({field: f"is too long ({limit} characters at most)"})
    return value


@transaction.atomic
def do_create_room(
    project: Project, *, name, owner_ref="", settings=None, acting_user=None
) -> Room:
    """Create a room; raise ValidationError naming the bad field, or
    QuotaExceeded at PROJECT_MAX_ROOMS."""
    fields = {
        "name": _check_text(name, "name", NAME_MAX, required=True),
        "owner_ref": _check_text(owner_ref, "owner_ref", OWNER_REF_MAX),
        "settings": validate_room_settings(settings),
    }
    check_room_quota(project)
    return Room.objects.create(project=project, **fields)


@transaction.atomic
def do_update_room(room: Room, changes: dict, *, acting_user=None) -> Room:
    """Apply a partial update (PATCH semantics: settings merge over the old ones)."""
    room = Room.objects.select_for_update().get(pk=room.pk)
    fields = []
    if "name" in changes:
        room.name = _check_text(changes["name"], "name", NAME_MAX, required=True)
        fields.append("name")
    if "owner_ref" in changes:
        room.owner_ref = _check_text(changes["owner_ref"], "owner_ref", OWNER_REF_MAX)
        fields.append("owner_ref")
    if "settings" in changes:
        room.settings = validate_room_settings(changes["settings"], base=room.settings)
        fields.append("settings")
    if fields:
        room.save(update_fields=fields)
    return room


@transaction.atomic
def do_delete_room(room: Room, *, acting_user=None) -> None:
    room = Room.objects.select_for_update().get(pk=room.pk)
    sessions = room.sessions.count()
    if sessions:
        raise RoomInUse(
            f"Room {room.room_id} has {sessions} recorded session(s); their recordings would be "
            "lost. Keep the room, or remove its sessions first."
        )
    room.delete()
