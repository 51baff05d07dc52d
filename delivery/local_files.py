"""Where a delivered file comes from (the recordings storage) and goes to
(``<room_id>/<conf_num>/<name>`` under the destination's root)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage, storages

from recordings.models import RecordingFile, Session

from .destinations.base import LocalFile, TransferError

COPY_CHUNK = 8 * 1024 * 1024


def remote_path_for(session: Session, name: str) -> str:
    return f"{session.room.room_id}/{session.conf_num}/{name}"


def mb(count: float) -> str:
    """Human size: "12.3 MB", "17 kB", "512 B"."""
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f} MB"
    if count >= 1_000:
        return f"{count / 1_000:.0f} kB"
    return f"{count:.0f} B"


def recordings_storage():
    return storages["recordings"]


@contextlib.contextmanager
def local_copy(rf: RecordingFile) -> Iterator[LocalFile]:
    """A LocalFile for ``rf``: the stored file itself when the recordings
    storage is a local folder, else a temporary copy streamed from it (removed
    afterwards)."""
    if rf.is_expired:
        raise TransferError(
            f"{rf.name} was removed by retention on {rf.expired_at:%Y-%m-%d}; it cannot be delivered",
            permanent=True,
        )
    storage = recordings_storage()
    missing = TransferError(
        f"{rf.name} is missing from the recording store ({rf.storage_path}); "
        "check the storage or redeliver after restoring it",
        permanent=True,
    )
    if isinstance(storage, FileSystemStorage):
        path = Path(storage.path(rf.storage_path))
        if not path.is_file():
            raise missing
        yield LocalFile(path=path, size=rf.size, sha256=rf.sha256 or None)
        return
    scratch = Path(settings.DATA_DIR) / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="delivery-", suffix=f"-{Path(rf.name).suffix}", dir=scratch)
    try:
        digest = hashlib.sha256()
        try:
            with storage.open(rf.storage_path, "rb") as src, os.fdopen(fd, "wb") as dst:
                while chunk := src.read(COPY_CHUNK):
                    dst.write(chunk)
                    digest.update(chunk)
        except FileNotFoundError:
            raise missing from None
        if rf.sha256 and digest.hexdigest() != rf.sha256:
            raise TransferError(
                f"{rf.name} read from the recording store does not match its sha256; retrying"
            )
        yield LocalFile(path=Path(name), size=rf.size, sha256=digest.hexdigest())
    finally:
        Path(name).unlink(missing_ok=True)
