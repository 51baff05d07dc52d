"""Test data for the report, serving, archive and retention tests: sessions and
recording files made with the ORM, their bytes written into the "recordings"
storage (the ingest API is tested on its own)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from django.core.files.base import ContentFile
from django.core.files.storage import storages

from projects.models import Project, Room
from recordings.models import RecordingFile, Session

CONTENT_TYPES = {
    RecordingFile.Type.INDIVIDUAL: "video/mp4",
    RecordingFile.Type.LIVE: "video/mp4",
    RecordingFile.Type.TRANSCODED: "video/mp4",
    RecordingFile.Type.CHAT: "application/json",
    RecordingFile.Type.METADATA: "application/json",
}


def make_room(project: Project, name: str = "Standup") -> Room:
    return Room.objects.create(project=project, name=name)


def make_session(
    room: Room, *, started_at: datetime | None = None, conf_num: str | None = None, **extra
) -> Session:
    fields = {"state": Session.State.READY, "duration_seconds": 65.0, "participant_count": 2}
    fields.update(extra)
    session = Session.objects.create(project=room.project, room=room, **fields)
    updates = {"started_at": started_at or datetime(2026, 3, 14, 9, 30, tzinfo=UTC)}
    if conf_num:
        updates["conf_num"] = conf_num
    Session.objects.filter(pk=session.pk).update(**updates)
    session.refresh_from_db()
    return session


def add_file(
    session: Session,
    kind: str,
    name: str,
    content: bytes,
    *,
    created_at: datetime | None = None,
    poster: bytes | None = None,
    participant: str = "",
) -> RecordingFile:
    storage = storages["recordings"]
    base = f"{session.project.app_id}/{session.room.room_id}/{session.conf_num}"
    path = storage.save(f"{base}/{name}", ContentFile(content))
    poster_path = storage.save(f"{base}/{name}.jpg", ContentFile(poster)) if poster else ""
    rf = RecordingFile.objects.create(
        session=session,
        project=session.project,
        type=kind,
        name=name,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        storage_path=path,
        content_type=CONTENT_TYPES[kind],
        poster_path=poster_path,
        participant=participant,
    )
    if created_at:
        RecordingFile.objects.filter(pk=rf.pk).update(created_at=created_at)
        rf.refresh_from_db()
    Session.objects.filter(pk=session.pk).update(total_size=session.total_size + len(content))
    session.total_size += len(content)
    return rf


VIDEO = bytes(range(256)) * 40  # 10240 bytes standing in for an MP4

CHAT = [
    {"timestamp": "2026-03-14T09:30:05.000Z", "from": "alice", "message": "Hello <b>all</b>"},
    {"timestamp": "2026-03-14T09:30:40.000Z", "from": "bob", "message": "Can you hear me?"},
]

METADATA = {
    "room_id": "r",
    "conf_num": "c",
    "started_at": "2026-03-14T09:30:00.000Z",
    "ended_at": "2026-03-14T09:31:05.000Z",
    "events": [
        {"timestamp": "2026-03-14T09:30:00.000Z", "event": "session-started"},
        {
            "timestamp": "2026-03-14T09:30:01.000Z",
            "event": "user-joined",
            "participant": "alice",
            "client_id": "client-1",
            "role": "moderator",
        },
        {"timestamp": "2026-03-14T09:31:05.000Z", "event": "session-ended"},
    ],
}


def full_session(room: Room, **kwargs) -> tuple[Session, dict[str, RecordingFile]]:
    """A finished session with one file of every type."""
    session = make_session(room, **kwargs)
    files = {
        "individual": add_file(session, "individual", "alice.mp4", VIDEO, participant="alice"),
        "transcoded": add_file(
            session, "transcoded", "composite.mp4", VIDEO, poster=b"\xff\xd8jpg"
        ),
        "live": add_file(session, "live", "live.mp4", VIDEO),
        "chat": add_file(session, "chat", "chat.json", json.dumps(CHAT).encode()),
        "metadata": add_file(session, "metadata", "metadata.json", json.dumps(METADATA).encode()),
    }
    return session, files
