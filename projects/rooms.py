"""Room settings as the Video API accepts them (EnableX-compatible subset).

Known keys are checked and normalised; other keys that EnableX clients send
(``quality``, ``participants``, ``canvas``, ...) are kept as given if they are
plain JSON scalars, so existing client code keeps working.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

MODES = ("group", "lecture")
BOOLEAN_KEYS = ("auto_recording", "chat_only", "scheduled", "adhoc", "canvas", "screen_share")
RECORDING_ROLES = ("moderator", "participant")
RECORDING_TRACKS = ("audio", "audiovideo")
# Bound on what a client may store in a room's free-form "data" and "sip" objects.
OBJECT_MAX_BYTES = 16 * 1024


def _is_http_url(value: str) -> bool:
    # EnableX's own create-room sample uses "https://your-custom-view-url", a
    # host without a dot, so the check is scheme + host, not a public domain.
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and " " not in value


def validate_json_object(raw: Any, field: str) -> dict:
    """A client's free-form object (EnableX's ``data``, ``sip``), kept as given."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValidationError({field: "must be an object"})
    if len(json.dumps(raw)) > OBJECT_MAX_BYTES:
        raise ValidationError({field: f"is too large ({OBJECT_MAX_BYTES} bytes of JSON at most)"})
    return raw


def _bool(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ValidationError({field: "must be true or false"})


def validate_room_settings(raw: Any, *, base: dict | None = None) -> dict:
    """Return clean settings, merged over ``base`` (for PATCH). Raise a
    ValidationError whose keys name the offending field, e.g.
    ``settings.live_recording.url``."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValidationError({"settings": "must be an object"})
    clean: dict[str, Any] = {
        "mode": "group",
        "auto_recording": False,
        "chat_only": False,
        "live_recording": {"auto_recording": False, "url": ""},
        **(base or {}),
    }
    for key, value in raw.items():
        field = f"settings.{key}"
        if key == "mode":
            if value not in MODES:
                raise ValidationError({field: f"must be one of {', '.join(MODES)}"})
            clean[key] = value
        elif key in BOOLEAN_KEYS:
            clean[key] = _bool(value, field)
        elif key == "live_recording":
            clean[key] = _live_recording(value, clean["live_recording"])
        elif key == "role_based_recording":
            clean[key] = _role_based_recording(value, clean.get(key) or {})
        elif isinstance(value, (str, int, float, bool)) or value is None:
            if isinstance(value, str) and len(value) > 1000:
                raise ValidationError({field: "is too long (1000 characters at most)"})
            clean[key] = value
        else:
            raise ValidationError({field: "must be a string, number or boolean"})
    if clean["chat_only"] and (clean["auto_recording"] or clean["live_recording"]["auto_recording"]):
        raise ValidationError(
            {"settings.chat_only": "a chat-only room cannot record (turn auto_recording off)"}
        )
    return clean


def _live_recording(value: Any, current: dict) -> dict:
    if not isinstance(value, dict):
        raise ValidationError({"settings.live_recording": "must be an object"})
    live = {"auto_recording": False, "url": "", **current}
    for key, item in value.items():
        if key == "auto_recording":
            live[key] = _bool(item, "settings.live_recording.auto_recording")
        elif key == "url":
            if item and not (isinstance(item, str) and _is_http_url(item)):
                raise ValidationError({"settings.live_recording.url": "must be an http(s) URL"})
            live[key] = item or ""
        else:
            raise ValidationError({f"settings.live_recording.{key}": "is not a known setting"})
    if live["auto_recording"] and not live["url"]:
        raise ValidationError(
            {"settings.live_recording.url": "is required when live auto_recording is on"}
        )
    return live


def _role_based_recording(value: Any, current: dict) -> dict:
    """``{"moderator": "audiovideo", "participant": "audio"}``: which tracks
    each role's recording keeps (EnableX's default is audiovideo)."""
    if not isinstance(value, dict):
        raise ValidationError({"settings.role_based_recording": "must be an object"})
    clean = dict(current)
    for role, tracks in value.items():
        field = f"settings.role_based_recording.{role}"
        if role not in RECORDING_ROLES:
            raise ValidationError({field: f"is not a role; use {' or '.join(RECORDING_ROLES)}"})
        if tracks not in RECORDING_TRACKS:
            raise ValidationError({field: f"must be one of {', '.join(RECORDING_TRACKS)}"})
        clean[role] = tracks
    return clean
