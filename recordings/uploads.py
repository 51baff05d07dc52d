"""Streaming of ingest uploads: a Django upload handler that writes the one
file of a multipart request to a temporary file inside DATA_DIR while hashing
it, so memory stays at one chunk whatever the size, and refuses bodies larger
than ``settings.UPLOAD_MAX_BYTES`` as early as it can tell."""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile

from portal.api import ApiError

FILE_FIELD = "file"
# Room for the multipart boundaries, headers and the small text fields.
FORM_OVERHEAD = 64 * 1024


class UploadTooLarge(ApiError):
    def __init__(self, limit: int):
        super().__init__(
            1013,
            f"The file is larger than the maximum upload size of {limit} bytes "
            "(UPLOAD_MAX_BYTES); split the recording or raise the limit.",
            status=413,
        )


class StoreFull(ApiError):
    def __init__(self):
        super().__init__(
            1507,
            "The recording store is full (no space left on device); free space and retry.",
            status=507,
        )


class OneFileOnly(ApiError):
    def __init__(self):
        super().__init__(1001, "Send exactly one file, in the `file` field", status=400)


def upload_temp_dir() -> Path:
    path = Path(settings.DATA_DIR) / "tmp" / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def raise_for_disk_error(exc: OSError) -> None:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise StoreFull() from exc


class StreamedUpload(UploadedFile):
    """A finished upload: on disk at ``temporary_file_path()``, with its size and
    sha256 already known."""

    def __init__(self, path: str, name: str, content_type: str, size: int, sha256: str):
        super().__init__(None, name, content_type, size)
        self.path = path
        self.sha256 = sha256

    def temporary_file_path(self) -> str:
        return self.path

    def close(self) -> None:  # nothing held open
        pass


class StreamingUploadHandler(FileUploadHandler):
    chunk_size = 256 * 1024

    def __init__(self, request=None, *, max_bytes: int | None = None):
        super().__init__(request)
        self.max_bytes = settings.UPLOAD_MAX_BYTES if max_bytes is None else max_bytes
        self.temp_path: str | None = None
        self.upload: StreamedUpload | None = None
        self._fh = None
        self._hash = hashlib.sha256()
        self._size = 0

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length and content_length > self.max_bytes + FORM_OVERHEAD:
            raise UploadTooLarge(self.max_bytes)
        return None

    def new_file(self, field_name, file_name, *args, **kwargs):
        if field_name != FILE_FIELD:
            raise SkipFile()
        if self.temp_path is not None:
            self.discard()
            raise OneFileOnly()
        super().new_file(field_name, file_name, *args, **kwargs)
        try:
            fd, self.temp_path = tempfile.mkstemp(dir=upload_temp_dir(), suffix=".part")
        except OSError as exc:
            raise_for_disk_error(exc)
            raise
        self._fh = os.fdopen(fd, "wb")

    def receive_data_chunk(self, raw_data: bytes, start: int):
        self._size += len(raw_data)
        if self._size > self.max_bytes:
            self.discard()
            raise UploadTooLarge(self.max_bytes)
        self._hash.update(raw_data)
        try:
            write_chunk(self._fh, raw_data)
        except OSError as exc:
            self.discard()
            raise_for_disk_error(exc)
            raise
        return None

    def file_complete(self, file_size: int):
        if self._fh is None:
            return None
        try:
            self._fh.close()
        except OSError as exc:
            self.discard()
            raise_for_disk_error(exc)
            raise
        self._fh = None
        # The client's Content-Type is dropped here: the server decides the type
        # from the bytes (recordings.admission).
        self.upload = StreamedUpload(
            self.temp_path, self.file_name or "", "", self._size, self._hash.hexdigest()
        )
        return self.upload

    def upload_interrupted(self):
        self.discard()

    def discard(self) -> None:
        """Remove the temporary file (if it was not moved into the store)."""
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                pass
            self._fh = None
        if self.temp_path:
            Path(self.temp_path).unlink(missing_ok=True)


def write_chunk(fh, data: bytes) -> None:
    fh.write(data)
