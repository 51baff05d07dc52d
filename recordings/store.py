"""The portal's recording store: the only way code reaches recording files.

``settings.STORAGES["recordings"]`` says where they are: a folder under
DATA_DIR (Django's FileSystemStorage, the default) or an S3-compatible bucket
(django-storages' S3Storage, for web and worker machines that share no disk).
Names are the store's, under the session's folder ``<app_id>/<room_id>/<conf_num>/``
(``<file>`` on a local store; an upload to a bucket is put there before the
session row is locked, so under a folder of its own, ``<uuid>/<file>``); a
file's row keeps its name in ``storage_path``. Callers never build a path or
open a file themselves, so both backends behave the same.

Memory stays bounded whatever the size: ``put`` streams (multipart on S3, see
``S3_TRANSFER`` in settings), reads are ranged GETs read in chunks, and
``fetch`` copies to a temporary file for the programs that need a path
(ffmpeg, the delivery destinations). The store is the operator's own
configuration, not tenant input, so it does not go through the egress guard.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages

CHUNK = 1024 * 1024


class Missing(FileNotFoundError):
    """The name is not in the store."""


@dataclass(frozen=True)
class Stored:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Fetched:
    path: Path
    size: int
    sha256: str  # "" when the file was not read (a local store's own file)


def backend() -> Storage:
    return storages["recordings"]


def is_local() -> bool:
    return isinstance(backend(), FileSystemStorage)


def local_path(name: str) -> Path | None:
    """The file itself when the store is a local folder (for nginx's
    X-Accel-Redirect and for reading in place), else None."""
    storage = backend()
    return Path(storage.path(name)) if isinstance(storage, FileSystemStorage) else None


def _s3_object(name: str) -> Any | None:
    """The boto3 Object behind ``name`` when the store is a bucket."""
    storage: Any = backend()
    if not hasattr(storage, "bucket"):
        return None
    from storages.utils import clean_name

    # _normalize_name applies the storage's ``location`` prefix and refuses
    # names that climb out of it, exactly as S3Storage's own methods do.
    return storage.bucket.Object(storage._normalize_name(clean_name(name)))


def _is_not_found(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status == 404 or response.get("Error", {}).get("Code") in ("NoSuchKey", "404")


class _HashingReader:
    """Hands a file's bytes to the backend once, hashing them on the way.
    Not seekable on purpose: boto3 then reads it strictly in order (one part
    after the other), so the digest is the file's."""

    closed = False

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data

    def seekable(self) -> bool:
        return False

    def close(self) -> None:  # the caller owns ``raw``
        pass


def put(
    name: str, source: str | os.PathLike | IO[bytes], *, move: bool = False, sha256: str = ""
) -> Stored:
    """Store ``source`` (a local path, or a readable binary file) under
    ``name``, replacing nothing: a name already taken raises FileExistsError.
    With ``move`` a source path is removed afterwards (renamed into place on a
    local store on the same file system: no copy, and no second read when the
    caller passes the ``sha256`` it computed)."""
    storage = backend()
    if isinstance(source, (str, os.PathLike)):
        if move and isinstance(storage, FileSystemStorage) and _rename_into(storage, name, source):
            final = storage.path(name)
            if not sha256:
                with open(final, "rb") as fh:
                    sha256 = hashlib.file_digest(fh, "sha256").hexdigest()
            return Stored(name, os.stat(final).st_size, sha256)
        with open(source, "rb") as fh:
            stored = put(name, fh)
        if move:
            os.unlink(source)
        return stored
    if storage.exists(name):
        raise FileExistsError(errno.EEXIST, "already in the recording store", name)
    reader = _HashingReader(source)
    saved = storage.save(name, File(cast(IO[bytes], reader), name=os.path.basename(name)))
    if saved != name:  # a backend that renamed rather than overwrote
        storage.delete(saved)
        raise FileExistsError(errno.EEXIST, "already in the recording store", name)
    return Stored(saved, reader.size, reader.digest.hexdigest())


def _rename_into(storage: FileSystemStorage, name: str, source: str | os.PathLike) -> bool:
    final = storage.path(name)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    if os.path.exists(final):
        raise FileExistsError(errno.EEXIST, "already in the recording store", name)
    try:
        os.replace(source, final)
    except OSError as exc:
        if exc.errno == errno.EXDEV:  # another file system: copy instead
            return False
        raise
    os.chmod(final, storage.file_permissions_mode or 0o644)
    return True


@contextlib.contextmanager
def open_read(name: str, start: int = 0, length: int | None = None) -> Iterator[IO[bytes]]:
    """A binary reader of ``name`` from byte ``start`` (``length`` bytes, or
    to the end). On a bucket this is one ranged GET read as it streams, never
    a download of the whole object."""
    obj = _s3_object(name)
    if obj is None:
        try:
            handle = backend().open(name, "rb")
        except FileNotFoundError:
            raise Missing(name) from None
        with handle:
            if start:
                handle.seek(start)
            yield handle
        return
    from botocore.exceptions import ClientError

    ranged = {}
    if start or length is not None:
        end = "" if length is None else str(start + length - 1)
        ranged["Range"] = f"bytes={start}-{end}"
    try:
        body = obj.get(**ranged)["Body"]
    except ClientError as exc:
        if _is_not_found(exc):
            raise Missing(name) from None
        raise
    with contextlib.closing(body):
        yield body


def iter_range(name: str, start: int, length: int, chunk: int = CHUNK) -> Iterator[bytes]:
    """``length`` bytes of ``name`` from ``start``, in chunks of at most ``chunk``."""
    if length <= 0:
        return
    with open_read(name, start, length) as handle:
        remaining = length
        while remaining > 0:
            data = handle.read(min(chunk, remaining))
            if not data:
                break
            remaining -= len(data)
            yield data


def read_bytes(name: str, limit: int) -> bytes:
    """The first ``limit`` bytes of a small file (chat, metadata)."""
    with open_read(name, 0, limit) as handle:
        return handle.read(limit)


def size(name: str) -> int:
    try:
        return backend().size(name)
    except FileNotFoundError:
        raise Missing(name) from None


def exists(name: str) -> bool:
    return backend().exists(name)


def delete(name: str) -> None:
    """Remove ``name``; a name not in the store is not an error."""
    backend().delete(name)


def listing(prefix: str = "") -> Iterator[str]:
    """Every name in the store under ``prefix`` (a folder, e.g. an app_id), at
    any depth. Used by retention's sweep and by operators checking a bucket."""
    storage = backend()
    try:
        folders, files = storage.listdir(prefix)
    except FileNotFoundError:
        return
    base = f"{prefix.rstrip('/')}/" if prefix else ""
    for name in files:
        yield base + name
    for folder in folders:
        yield from listing(base + folder)


def check() -> None:
    """Raise when the store cannot be reached (health checks). One cheap
    request: a listing of a folder no recording uses (their names start with
    an app id), so it walks nothing."""
    try:
        backend().listdir(".healthz")
    except FileNotFoundError:
        pass  # a folder store that answered "no such folder": it is there


def scratch_dir(kind: str) -> Path:
    """A folder for temporary files of ``kind`` under DATA_DIR/tmp (the
    machine's own disk, never the store)."""
    path = Path(settings.DATA_DIR) / "tmp" / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def fetch(name: str, *, workdir: Path | None = None, sha256: str = "") -> Iterator[Fetched]:
    """A local file with the bytes of ``name`` for programs that need a path:
    the stored file itself on a local store, else a streamed copy in
    ``workdir`` (or DATA_DIR/tmp/fetch), removed afterwards. The copy is
    hashed on the way; a known ``sha256`` that does not match raises
    ValueError (the bytes changed or arrived cut)."""
    path = local_path(name)
    if path is not None:
        if not path.is_file():
            raise Missing(name)
        yield Fetched(path, path.stat().st_size, "")
        return
    fd, temp = tempfile.mkstemp(
        prefix="fetch-", suffix=Path(name).suffix, dir=workdir or scratch_dir("fetch")
    )
    try:
        digest, count = hashlib.sha256(), 0
        with open_read(name) as src, os.fdopen(fd, "wb") as dst:
            while data := src.read(CHUNK):
                dst.write(data)
                digest.update(data)
                count += len(data)
        if sha256 and digest.hexdigest() != sha256:
            raise ValueError(f"{name} read from the recording store does not match its sha256")
        yield Fetched(Path(temp), count, digest.hexdigest())
    finally:
        Path(temp).unlink(missing_ok=True)
