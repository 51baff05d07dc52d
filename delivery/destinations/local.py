"""A folder on this machine: a local disk or a mounted NFS/SMB share."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path

from django import forms

from .base import (
    Destination,
    DestinationForm,
    LocalFile,
    ProgressCallback,
    TransferError,
)

COPY_CHUNK = 8 * 1024 * 1024


class LocalFolderForm(DestinationForm):
    path = forms.CharField(help_text="Absolute path of a mounted folder the worker can write to.")

    def clean_path(self) -> str:
        path = self.cleaned_data["path"].strip()
        if not os.path.isabs(path):
            raise forms.ValidationError("Give an absolute path, e.g. /mnt/recordings.")
        return path


class LocalFolderDestination(Destination):
    kind = "local"
    webhook_name = "local"
    url_scheme = "file"
    label = "Local or NFS folder"
    form_class = LocalFolderForm
    parallel_files = 2

    @property
    def base(self) -> Path:
        return Path(self.config["path"])

    def describe(self) -> str:
        return f"file://{self.base / self.root if self.root else self.base}"

    def webhook_destination(self) -> dict[str, str]:
        return {"host": "", "account": ""}

    def final_path(self, remote_path: str) -> str:
        return str(self._target(remote_path))

    def _target(self, remote_path: str) -> Path:
        # Everything stays under <path>/<root>: a relative part may not climb
        # out of the configured root into the rest of the shared folder.
        base = (self.base / self.root).resolve() if self.root else self.base.resolve()
        target = (base / remote_path.lstrip("/")).resolve()
        if base != target and base not in target.parents:
            raise TransferError(f"Path {remote_path!r} escapes {base}", permanent=True)
        return target

    def open(self) -> None:
        if not self.base.is_dir():
            raise TransferError(f"Folder {self.base} does not exist or is not mounted", permanent=True)

    def check(self) -> str:
        name = f".portal-probe-{secrets.token_hex(4)}.txt"
        target = self._target(name)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"probe\n")
            target.unlink()
        except OSError as exc:
            raise TransferError(f"Cannot write to {target.parent}: {exc.strerror}", permanent=True) from None
        return f"Wrote and removed a probe file in {target.parent}"

    def upload(self, local: LocalFile, remote_path: str, progress: ProgressCallback) -> None:
        target = self._target(remote_path)
        tmp = target.with_name(f".{target.name}.part-{secrets.token_hex(4)}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(local.path, "rb") as src, open(tmp, "wb") as dst:
                while chunk := src.read(COPY_CHUNK):
                    dst.write(chunk)
                    progress(len(chunk))
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):  # e.g. EROFS again on a read-only mount
                tmp.unlink(missing_ok=True)
            permanent = exc.errno in (13, 30)  # EACCES, EROFS
            raise TransferError(f"Cannot write {target}: {exc.strerror}", permanent=permanent) from None

    def verify(self, local: LocalFile, remote_path: str) -> bool:
        target = self._target(remote_path)
        try:
            if target.stat().st_size != local.size:
                return False
            with open(target, "rb") as fh:
                remote = hashlib.file_digest(fh, "sha256").hexdigest()
            return remote == local.sha256_hex()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise TransferError(f"Cannot read back {target}: {exc.strerror}") from None

