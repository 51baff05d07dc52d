"""Small helpers that create rows (and files) for tests."""

from __future__ import annotations

import hashlib

from django.core.files.base import ContentFile
from django.core.files.storage import storages

from projects.models import Project, Room
from recordings.models import RecordingFile, Session


def make_room(project: Project, name: str = "Room", **settings) -> Room:
    return Room.objects.create(project=project, name=name, settings=settings)


def make_session(project: Project, room: Room | None = None, **fields) -> Session:
    room = room or make_room(project)
    return Session.objects.create(project=project, room=room, **fields)


def make_recording(
    project: Project,
    *,
    session: Session | None = None,
    type: str = RecordingFile.Type.INDIVIDUAL,
    name: str = "individual_1.mp4",
    content: bytes = b"\x00\x00\x00\x18ftypmp42 test recording bytes",
    participant: str = "",
) -> RecordingFile:
    """A RecordingFile row with its bytes in the "recordings" storage."""
    session = session or make_session(project)
    path = f"{project.app_id}/{session.room.room_id}/{session.conf_num}/{name}"
    stored = storages["recordings"].save(path, ContentFile(content))
    return RecordingFile.objects.create(
        session=session,
        project=project,
        type=type,
        name=name,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        storage_path=stored,
        participant=participant,
    )


def save_destination(project: Project, kind: str, form, name: str, file_types, enabled=True):
    """A destination saved from a valid kind form, as the delivery command does."""
    from delivery.actions.destinations import do_save_destination
    from delivery.forms import destination_settings

    public_config, new_secrets = destination_settings(form)
    return do_save_destination(
        project, kind, name=name, file_types=file_types, enabled=enabled,
        public_config=public_config, new_secrets=new_secrets, acting_user=None,
    )  # fmt: skip
