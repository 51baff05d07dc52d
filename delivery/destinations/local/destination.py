"""A folder on this machine: a local disk or a mounted NFS/SMB share.

Writing files on the portal's own machines is an operator feature: the kind is
offered only when ``DELIVERY_LOCAL_ROOTS`` lists the folders it may use, and a
destination's folder must resolve (symbolic links and ``..`` included) inside
one of them and never inside the portal's ``DATA_DIR`` (recordings, static
files served by nginx, secrets). The rule is checked when a destination is
saved and again by every run and connection test, before the folder is
touched, so a refused path gives the same answer whether or not it exists.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from django import forms
from django.conf import settings

from ..base import (
    Destination,
    DestinationForm,
    LocalFile,
    ProgressCallback,
    ResumePoint,
    TransferError,
    below_root,
    probe_name,
    temp_name,
)

COPY_CHUNK = 8 * 1024 * 1024
NOT_ENABLED = (
    "Local folders are not enabled on this portal: the operator lists the folders "
    "deliveries may write to in DELIVERY_LOCAL_ROOTS."
)


def allowed_roots() -> list[Path]:
    """DELIVERY_LOCAL_ROOTS, each resolved (a root may itself be a symlink)."""
    return [Path(os.path.realpath(root)) for root in settings.DELIVERY_LOCAL_ROOTS]


def _portal_folders(data_dir: Path) -> list[Path]:
    """What the portal keeps in DATA_DIR; a root inside DATA_DIR may not touch them."""
    names = ("recordings", "static", "media", "secrets", "tmp")
    return [Path(os.path.realpath(settings.RECORDINGS_ROOT)),
            Path(os.path.realpath(settings.STATIC_ROOT)),
            *(data_dir / name for name in names)]  # fmt: skip


def _root_may_hold(root: Path, real: Path, data_dir: Path) -> bool:
    if not real.is_relative_to(root):
        return False
    if not real.is_relative_to(data_dir):
        return True
    # Inside DATA_DIR only under a root the operator set aside there (make
    # run's demo uses DATA_DIR/delivered), never DATA_DIR itself or a root
    # that contains it, and never one holding or held by the portal's folders.
    return (
        root != data_dir
        and root.is_relative_to(data_dir)
        and not any(
            root.is_relative_to(own) or own.is_relative_to(root)
            for own in _portal_folders(data_dir)
        )
    )


def refusal(path: str) -> str:
    """Why deliveries may not write to ``path``, or "" if they may. The
    answer depends on the path and the settings, not on what exists there
    (beyond symbolic links inside the allowed folders)."""
    roots = allowed_roots()
    if not roots:
        return NOT_ENABLED
    if not os.path.isabs(path):
        return "Give an absolute path, e.g. /mnt/recordings."
    real = Path(os.path.realpath(path))
    data_dir = Path(os.path.realpath(settings.DATA_DIR))
    if any(_root_may_hold(root, real, data_dir) for root in roots):
        return ""
    if real.is_relative_to(data_dir):
        return f"{path} is inside the portal's own data folder (DATA_DIR); deliveries never write there."
    allowed = ", ".join(settings.DELIVERY_LOCAL_ROOTS)
    return (
        f"{path} is not inside a folder this portal may deliver to ({allowed}); "
        "symbolic links and '..' count where they lead."
    )


class LocalFolderForm(DestinationForm):
    path = forms.CharField(help_text="Absolute path of a mounted folder the worker can write to.")

    def clean_path(self) -> str:
        path = self.cleaned_data["path"].strip()
        if problem := refusal(path):
            raise forms.ValidationError(problem)
        return path

    def clean(self) -> dict:
        data = super().clean() or {}
        path, root = data.get("path"), data.get("root") or ""
        # ``root`` is joined to the path: it may not lead out either.
        if path and root and (problem := refusal(os.path.join(path, root))):
            self.add_error("root", problem)
        return data


class LocalFolderDestination(Destination):
    kind = "local"
    webhook_name = "local"
    url_scheme = "file"
    label = "Local or NFS folder"
    form_class = LocalFolderForm
    parallel_files = 2

    @classmethod
    def unavailable(cls) -> str:
        return "" if settings.DELIVERY_LOCAL_ROOTS else NOT_ENABLED

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
        target = (base / below_root(remote_path)).resolve()
        if base != target and base not in target.parents:
            raise TransferError(f"Path {remote_path!r} escapes {base}", permanent=True)
        if problem := refusal(str(target)):
            raise TransferError(problem, permanent=True)
        return target

    def open(self) -> None:
        # Again at every run and test: the settings or the folders may have
        # changed since the destination was saved (e.g. a symlink swapped in).
        for path in (str(self.base), os.path.join(self.base, self.root)):
            if problem := refusal(path):
                raise TransferError(problem, permanent=True)
        if not self.base.is_dir():
            raise TransferError(f"Folder {self.base} does not exist or is not mounted", permanent=True)

    def check(self) -> str:
        name = probe_name()
        target = self._target(name)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"probe\n")
            target.unlink()
        except OSError as exc:
            raise TransferError(f"Cannot write to {target.parent}: {exc.strerror}", permanent=True) from None
        return f"Wrote and removed a probe file in {target.parent}"

    def upload(
        self,
        local: LocalFile,
        remote_path: str,
        progress: ProgressCallback,
        resume: ResumePoint | None = None,
    ) -> None:
        target = self._target(remote_path)
        tmp = target.with_name(temp_name(target.name))
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
        except BaseException:  # e.g. the worker stopping mid-file: no .part left behind
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise

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

