"""Room settings as the Video API accepts them (EnableX-compatible subset).

Known keys are checked and normalised; other keys that EnableX clients send
(``quality``, ``participants``, ``canvas``, ...) are kept as given if they are
plain JSON scalars, so existing client code keeps working.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

MODES = ("group", "lecture")
BOOLEAN_KEYS = ("auto_recording", "chat_only", "scheduled", "adhoc", "canvas", "screen_share")

_url = URLValidator(schemes=["http", "https"])


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
            if item:
                try:
                    _url(item)
                except ValidationError:
                    raise ValidationError(
                        {"settings.live_recording.url": "must be an http(s) URL"}
                    ) from None
            live[key] = item or ""
        else:
            raise ValidationError({f"settings.live_recording.{key}": "is not a known setting"})
    if live["auto_recording"] and not live["url"]:
        raise ValidationError(
            {"settings.live_recording.url": "is required when live auto_recording is on"}
        )
    return live
