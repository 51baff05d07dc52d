"""``manifest.json``: written once, last, into a session's folder when the
delivery is complete, so receivers know the folder is complete. Its content
depends only on the files (and what is missing), so a retry finds an
identical manifest already in place and leaves it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

from .destinations.base import LocalFile
from .models import DeliveredFile, Delivery


def manifest_bytes(delivery: Delivery, files: list[DeliveredFile]) -> bytes:
    session = delivery.session
    body = {
        "app_id": session.project.app_id,
        "room_id": session.room.room_id,
        "conf_num": session.conf_num,
        "files": [
            {
                "type": f.recording_file.type,
                "name": f.recording_file.name,
                "size": f.recording_file.size,
                "sha256": f.recording_file.sha256,
            }
            for f in sorted(files, key=lambda f: f.recording_file.name)
        ],
    }
    if delivery.missing:
        body["missing"] = delivery.missing
    return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()


@contextlib.contextmanager
def manifest_file(delivery: Delivery, files: list[DeliveredFile]) -> Iterator[LocalFile]:
    data = manifest_bytes(delivery, files)
    scratch = Path(settings.DATA_DIR) / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(prefix="manifest-", suffix=".json", dir=scratch) as fh:
        fh.write(data)
        fh.flush()
        yield LocalFile(path=Path(fh.name), size=len(data), sha256=hashlib.sha256(data).hexdigest())
