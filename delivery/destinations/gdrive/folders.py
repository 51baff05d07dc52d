"""The folders of a Google Drive destination: ``<folder>/<root>/<room_id>/
<conf_num>/`` found or created (once per process and parent, whatever the
number of threads; worker processes racing to create one converge on the
oldest), and the files named in them."""

from __future__ import annotations

import logging
import posixpath
import threading
from contextlib import suppress
from typing import Any

from ..base import TransferError, below_root

log = logging.getLogger(__name__)

FOLDER_MIME = "application/vnd.google-apps.folder"

# Find-or-create of one folder name under one parent is serialized across the
# threads of this process; striped so the set of locks stays bounded.
_FOLDER_LOCKS = tuple(threading.Lock() for _ in range(64))


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class DriveFolders:
    """Folder lookups of ``GoogleDriveDestination``, which sets these
    attributes and implements ``_files`` and ``_execute``."""

    folder_id: str | None
    folder_path: list[str]
    root: str
    _folders: dict[tuple[str, str], str]
    _folder_id_checked: bool

    def _files(self) -> Any:
        raise NotImplementedError

    def _execute(self, request: Any, what: str, *, not_found: str | None = None) -> Any:
        raise NotImplementedError

    # -- folders ----------------------------------------------------------------------------------
    def _base_folder(self, *, create: bool) -> str | None:
        if self.folder_id and not self._folder_id_checked:
            self._check_folder_id()
        start = self.folder_id or "root"
        return self._walk(start, self.folder_path + [p for p in self.root.split("/") if p], create)

    def _parent_and_name(self, remote_path: str, *, create: bool) -> tuple[str | None, str]:
        dirs, name = posixpath.split(below_root(remote_path))
        base = self._base_folder(create=create)
        if base is None:
            return None, name
        return self._walk(base, [d for d in dirs.split("/") if d], create), name

    def _walk(self, parent: str | None, names: list[str], create: bool) -> str | None:
        for name in names:
            if parent is None:
                return None
            parent = self._child_folder(parent, name, create)
        return parent

    def _check_folder_id(self) -> None:
        not_found = (
            f"Google Drive folder {self.folder_id} was not found, or the portal cannot see it "
            "(it only sees folders it created): give a folder path instead, e.g. Recordings/Portal."
        )
        meta = self._execute(
            self._files().get(fileId=self.folder_id, fields="id,mimeType,trashed"),
            f"opening folder {self.folder_id}",
            not_found=not_found,
        )
        if meta.get("mimeType") != FOLDER_MIME:
            raise TransferError(
                f"Google Drive item {self.folder_id} is not a folder.", permanent=True
            )
        if meta.get("trashed"):
            raise TransferError(
                f"Google Drive folder {self.folder_id} is in the bin: restore it or choose another.",
                permanent=True,
            )
        self._folder_id_checked = True

    def _child_folder(self, parent: str, name: str, create: bool) -> str | None:
        key = (parent, name)
        if key in self._folders:
            return self._folders[key]
        query = (
            f"name = {_quote(name)} and {_quote(parent)} in parents "
            f"and mimeType = '{FOLDER_MIME}' and trashed = false"
        )
        with _FOLDER_LOCKS[hash(key) % len(_FOLDER_LOCKS)]:
            found = self._list(query, "id,createdTime", f"finding folder {name!r}")
            if found:
                folder = found[0]["id"]
            elif not create:
                return None
            else:
                body = {"name": name, "mimeType": FOLDER_MIME, "parents": [parent]}
                mine = self._execute(
                    self._files().create(body=body, fields="id"), f"creating folder {name!r}"
                )["id"]
                folder = self._settle_duplicates(query, mine, name)
        self._folders[key] = folder
        return folder

    def _settle_duplicates(self, query: str, mine: str, name: str) -> str:
        """Another worker process may have created the same folder at the same
        moment (the lock only covers this process). Every creator re-lists and
        keeps the oldest (createdTime, then id) and deletes its own extra copy,
        so all of them converge on one folder."""
        found = self._list(query, "id,createdTime", f"finding folder {name!r}")
        keeper = found[0]["id"] if found else mine
        if keeper != mine:
            log.info("Google Drive: folder %r was created concurrently; using the oldest", name)
            with suppress(TransferError):
                self._execute(self._files().delete(fileId=mine), f"removing duplicate {name!r}")
        return keeper

    def _files_named(self, folder: str, name: str) -> list[dict[str, Any]]:
        query = (
            f"name = {_quote(name)} and {_quote(folder)} in parents "
            f"and mimeType != '{FOLDER_MIME}' and trashed = false"
        )
        return self._list(query, "id,createdTime", f"looking for {name!r}")

    def _list(self, query: str, fields: str, what: str) -> list[dict[str, Any]]:
        """All matches, oldest first (createdTime, then id)."""
        items: list[dict[str, Any]] = []
        page_token = None
        while True:
            request = self._files().list(
                q=query, fields=f"nextPageToken,files({fields})", pageSize=100, pageToken=page_token
            )
            page = self._execute(request, what)
            items.extend(page.get("files", []))
            page_token = page.get("nextPageToken")
            if not page_token:
                return sorted(items, key=lambda f: (f.get("createdTime", ""), f["id"]))
