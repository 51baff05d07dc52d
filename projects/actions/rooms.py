"""Rooms: the Video API and the Rooms page share these rules. Every change
is audited; the Video API acts for the app, not a person (``acting_user=None``,
shown as "—" in the audit log with the caller's address)."""

from __future__ import annotations

import json
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ..audit import log_audit
from ..models import AuditEvent, Project, Room
from ..quotas import check_room_quota
from ..rooms import validate_json_object, validate_room_settings

NAME_MAX = 200
OWNER_REF_MAX = 200


class RoomInUse(Exception):
    """The room has a session in progress, so it cannot be deleted now."""


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


def _owner_ref(value) -> tuple[str, bool]:
    """(stored text, is a number): EnableX's PHP samples send a JSON number
    and read back the number they sent."""
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        text = json.dumps(value if not isinstance(value, Decimal) else float(value))
        if len(text) > OWNER_REF_MAX or text in ("NaN", "Infinity", "-Infinity"):
            raise ValidationError({"owner_ref": "must be a finite number or a string"})
        return text, True
    if value is not None and not isinstance(value, str):
        raise ValidationError({"owner_ref": "must be a string or a number"})
    return _check_text(value, "owner_ref", OWNER_REF_MAX), False


@transaction.atomic
def do_create_room(
    project: Project,
    *,
    name,
    owner_ref="",
    settings=None,
    data=None,
    sip=None,
    acting_user,
    ip: str | None = None,
) -> Room:
    """Create a room; raise ValidationError naming the bad field, or
    QuotaExceeded at PROJECT_MAX_ROOMS."""
    owner_text, owner_is_number = _owner_ref(owner_ref)
    fields = {
        "name": _check_text(name, "name", NAME_MAX, required=True),
        "owner_ref": owner_text,
        "owner_ref_is_number": owner_is_number,
        "settings": validate_room_settings(settings),
        "data": validate_json_object(data, "data"),
        "sip": validate_json_object(sip, "sip"),
    }
    check_room_quota(project)
    room = Room.objects.create(project=project, **fields)
    log_audit(
        project, AuditEvent.Action.ROOM_CREATED, actor=acting_user, ip=ip,
        room_id=room.room_id, name=room.name,
    )  # fmt: skip
    return room


@transaction.atomic
def do_update_room(room: Room, changes: dict, *, acting_user, ip: str | None = None) -> Room:
    """Apply a partial update (PATCH semantics: settings merge over the old
    ones; ``data`` and ``sip`` are replaced as given)."""
    room = Room.objects.select_for_update().get(pk=room.pk)
    fields = []
    if "name" in changes:
        room.name = _check_text(changes["name"], "name", NAME_MAX, required=True)
        fields.append("name")
    if "owner_ref" in changes:
        room.owner_ref, room.owner_ref_is_number = _owner_ref(changes["owner_ref"])
        fields += ["owner_ref", "owner_ref_is_number"]
    if "settings" in changes:
        room.settings = validate_room_settings(changes["settings"], base=room.settings)
        fields.append("settings")
    for key in ("data", "sip"):
        if key in changes:
            setattr(room, key, validate_json_object(changes[key], key))
            fields.append(key)
    if fields:
        room.save(update_fields=fields)
        log_audit(
            room.project, AuditEvent.Action.ROOM_CHANGED, actor=acting_user, ip=ip,
            room_id=room.room_id, changed=[f for f in fields if f != "owner_ref_is_number"],
        )  # fmt: skip
    return room


@transaction.atomic
def do_delete_room(room: Room, *, acting_user, ip: str | None = None) -> None:
    """Delete a room unless a session is in progress in it (as EnableX does).
    The row stays, marked deleted, so its past sessions and their recordings
    remain in the report, the Archive API and the CDR."""
    from recordings.models import Session  # recordings depends on projects

    room = Room.objects.select_for_update().get(pk=room.pk)
    if room.sessions.filter(state=Session.State.LIVE).exists():
        raise RoomInUse(
            f"Room {room.room_id} has a session in progress; end the session, then delete the room."
        )
    room.deleted_at = timezone.now()
    room.save(update_fields=["deleted_at"])
    log_audit(
        room.project, AuditEvent.Action.ROOM_DELETED, actor=acting_user, ip=ip,
        room_id=room.room_id, name=room.name,
    )  # fmt: skip
