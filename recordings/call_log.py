"""Who took part in a session and when, read once from the session's metadata
log (the media server's join, leave and publish events) and kept on the
Session for the CDR API.

The log is tenant input: it is read only up to ``MAX_BYTES``, only the keys
below are taken, strings are cut short, and anything malformed is skipped
rather than failing the CDR.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from . import store

log = logging.getLogger(__name__)

MAX_BYTES = 2 * 1024 * 1024
MAX_PARTICIPANTS = 500
TEXT_MAX = 200


def _text(value: Any, limit: int = TEXT_MAX) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _moment(value: Any) -> str | None:
    """An ISO timestamp as UTC ISO text, or None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def parse_call_log(raw: bytes) -> dict[str, dict]:
    """``{participant: {role, joined, left, audio, video}}`` from a metadata log."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    events = data.get("events") if isinstance(data, dict) else None
    people: dict[str, dict] = {}
    for event in events if isinstance(events, list) else []:
        if not isinstance(event, dict):
            continue
        name = _text(event.get("participant"))
        if not name or (name not in people and len(people) >= MAX_PARTICIPANTS):
            continue
        person = people.setdefault(
            name, {"role": "", "joined": None, "left": None, "audio": False, "video": False}
        )
        kind, at = event.get("event"), _moment(event.get("timestamp"))
        if kind == "user-joined":
            person["role"] = _text(event.get("role"), 40) or person["role"]
            person["joined"] = person["joined"] or at
        elif kind == "user-left":
            person["left"] = at or person["left"]
        elif kind == "stream-published":
            person["audio"] = person["audio"] or event.get("audio") is True
            person["video"] = person["video"] or event.get("video") is True
    return people


def read_call_log(storage_path: str) -> dict[str, dict]:
    try:
        if store.size(storage_path) > MAX_BYTES:
            return {}
        return parse_call_log(store.read_bytes(storage_path, MAX_BYTES))
    except OSError as exc:
        # A missing or unreadable log leaves the CDR to the recordings alone.
        log.warning("cannot read metadata log %s: %s", storage_path, exc.__class__.__name__)
        return {}
