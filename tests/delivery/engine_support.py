"""Helpers for the delivery engine tests: sessions with real files in the
recordings storage, and FlakyFolder — a test double of a destination (a real
local folder that fails on request) for errors no real server gives on cue."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest
from django.core.files.storage import storages
from django_q.conf import Conf

from delivery import destinations
from delivery.destinations.base import TransferError
from delivery.destinations.local import LocalFolderDestination
from delivery.models import DeliveryDestination
from projects.models import Room
from recordings.models import RecordingFile, Session

FLAKY = "flaky"


def write_file(storage_path: str, size: int = 0, data: bytes | None = None) -> str:
    """Write ``data`` (or ``size`` random bytes, streamed) into the recordings
    storage; return its sha256."""
    path = storages["recordings"].path(storage_path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        if data is not None:
            fh.write(data)
            digest.update(data)
        else:
            left = size
            while left:
                chunk = os.urandom(min(left, 1 << 20))
                fh.write(chunk)
                digest.update(chunk)
                left -= len(chunk)
    return digest.hexdigest()


def make_session(project, files: dict[str, tuple[str, bytes | int]], *, state="ready") -> Session:
    """files: name -> (type, content bytes or a size in bytes)."""
    room = Room.objects.create(project=project, name="Room")
    session = Session.objects.create(project=project, room=room, state=state)
    for name, (file_type, content) in files.items():
        add_file(session, name, file_type, content)
    return session


def add_file(session: Session, name: str, file_type: str, content: bytes | int) -> RecordingFile:
    storage_path = f"{session.project.app_id}/{session.room.room_id}/{session.conf_num}/{name}"
    if isinstance(content, bytes):
        digest = write_file(storage_path, data=content)
        size = len(content)
    else:
        digest = write_file(storage_path, size=content)
        size = content
    return RecordingFile.objects.create(
        session=session, project=session.project, type=file_type, name=name, size=size,
        sha256=digest, storage_path=storage_path,
    )  # fmt: skip


def local_destination(project, folder, *, types=("transcoded", "chat"), name="nas", **extra):
    folder.mkdir(parents=True, exist_ok=True)
    return DeliveryDestination.objects.create(
        project=project, name=name, kind=extra.pop("kind", "local"), file_types=list(types),
        config={"path": str(folder), "root": "recordings", **extra.pop("config", {})},
        secrets=extra.pop("secrets", {}), **extra,
    )  # fmt: skip


class FlakyFolder(LocalFolderDestination):
    """A real local folder whose uploads fail as the test says (class-level
    knobs, reset by the ``flaky`` fixture)."""

    kind = FLAKY
    fail_names: dict[str, BaseException] = {}
    delay = 0.0
    uploads: list[str] = []
    started = threading.Event()
    release = threading.Event()
    hold = False

    def upload(self, local, remote_path, progress, resume=None):
        name = remote_path.rsplit("/", 1)[-1]
        type(self).uploads.append(name)
        type(self).started.set()
        if type(self).hold:
            type(self).release.wait(30)
        if name in type(self).fail_names:
            raise type(self).fail_names.pop(name)
        if type(self).delay:
            time.sleep(type(self).delay)
        super().upload(local, remote_path, progress)


@pytest.fixture
def flaky(monkeypatch):
    monkeypatch.setitem(
        destinations.REGISTRY, FLAKY, ("Flaky folder (test double)", f"{__name__}.FlakyFolder")
    )
    FlakyFolder.fail_names = {}
    FlakyFolder.delay = 0.0
    FlakyFolder.uploads = []
    FlakyFolder.started = threading.Event()
    FlakyFolder.release = threading.Event()
    FlakyFolder.hold = False
    yield FlakyFolder
    FlakyFolder.release.set()


@pytest.fixture
def sync_queue(monkeypatch):
    """django-q2 runs tasks in-process, as the cluster would."""
    monkeypatch.setattr(Conf, "SYNC", True)


def transient(message="Connection reset by the server; retrying"):
    return TransferError(message)
