"""Google Drive of a connected Google account (OAuth, ``drive.file`` scope).

Files go to ``<folder>/<root>/<room_id>/<conf_num>/<name>``. ``folder`` is a
folder ID (or a Drive folder link) used as is, or a path such as
``Recordings/Portal`` whose folders are found or created. With ``drive.file``
the portal only sees files and folders it created itself, so a folder ID must
be one the portal made, and a path never picks up the user's own folders.

Uploads are resumable: the file appears in Drive only once complete, a lost
connection or a 5xx resumes from what Google has, and a file already present
under the same name is updated in place (a new revision) rather than duplicated.
"""

from __future__ import annotations

import http.client
import io
import logging
import mimetypes
import posixpath
import re
import secrets
import threading
import time
from contextlib import suppress
from typing import Any

import httplib2
from django import forms
from google.auth.exceptions import GoogleAuthError, RefreshError
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaFileUpload, MediaIoBaseUpload

from delivery.google_oauth import credentials_for, drive_service
from portal import egress

from .base import (
    PROBE_NAME,
    Destination,
    DestinationForm,
    LocalFile,
    ProgressCallback,
    ResumePoint,
    TransferError,
    refused_error,
)

log = logging.getLogger(__name__)

FOLDER_MIME = "application/vnd.google-apps.folder"
UPLOAD_CHUNK = 8 * 1024 * 1024  # Drive wants chunks in multiples of 256 KiB
REVOKED_MESSAGE = "Google account access was revoked or expired: reconnect the Google account"
RATE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "backendError"}
FULL_REASONS = {"storageQuotaExceeded", "teamDriveFileLimitExceeded"}
NETWORK_ERRORS = (OSError, httplib2.HttpLib2Error, http.client.HTTPException)
DRIVE_ERRORS = (HttpError, GoogleAuthError, egress.OutboundRefused, *NETWORK_ERRORS)

# Find-or-create of one folder name under one parent is serialized across the
# threads of this process; striped so the set of locks stays bounded.
_FOLDER_LOCKS = tuple(threading.Lock() for _ in range(64))

_LINKED_ID = re.compile(r"/folders/([A-Za-z0-9_-]{10,})")
_LOOKS_LIKE_ID = re.compile(r"^(?=.*\d)(?=.*[a-z])(?=.*[A-Z])[A-Za-z0-9_-]{25,}$")


class GoogleAccountError(TransferError):
    """A Google account must be (re)connected; pages offer a "Reconnect Google
    account" button for errors with ``reconnect``."""

    reconnect = True

    def __init__(self, message: str):
        super().__init__(message, permanent=True)


class GoogleGrantRevoked(GoogleAccountError):
    def __init__(self, message: str = REVOKED_MESSAGE):
        super().__init__(message)


def parse_folder(value: str) -> tuple[str | None, list[str]]:
    """``(folder_id, [])`` for an ID or a Drive folder link, ``(None, segments)``
    for a path. A leading ``/`` always means a path."""
    value = value.strip()
    if linked := _LINKED_ID.search(value):
        return linked.group(1), []
    if _LOOKS_LIKE_ID.match(value):
        return value, []
    return None, [part.strip() for part in value.split("/") if part.strip()]


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class _ChunkedFileUpload(MediaFileUpload):
    """Sends each chunk as bytes read from the file rather than as a slice of
    the open file: httplib2 and the token refresh re-send a request body after a
    stale connection or a 401, and a stream slice would already be used up."""

    def has_stream(self) -> bool:
        return False


class GoogleDriveForm(DestinationForm):
    secret_fields = ("refresh_token",)

    folder = forms.CharField(
        required=False,
        help_text=(
            "A folder path in My Drive such as Recordings/Portal (created if missing), "
            "or the ID or link of a folder the portal created. Blank: My Drive."
        ),
    )
    # Both set by the "Connect Google account" flow, not typed in: the email is
    # shown read-only (from ``initial``) and a blank token keeps the stored one.
    account_email = forms.EmailField(required=False, disabled=True, label="Google account")
    refresh_token = forms.CharField(required=False, help_text="Set by connecting a Google account.")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["refresh_token"].required = False

    def clean_folder(self) -> str:
        value = (self.cleaned_data.get("folder") or "").strip()
        folder_id, segments = parse_folder(value)
        if folder_id:
            return folder_id
        if any(part in (".", "..") for part in segments):
            raise forms.ValidationError("Give a folder path without '.' or '..'.")
        return "/".join(segments) if not value.startswith("/") else "/" + "/".join(segments)


class GoogleDriveDestination(Destination):
    kind = "gdrive"
    webhook_name = "gdrive"
    connects_google_account = True
    action_only_secrets = ("refresh_token",)
    label = "Save on Google Drive"
    form_class = GoogleDriveForm

    chunk_size = UPLOAD_CHUNK
    max_retries = 5  # consecutive failed chunks before giving up (transient)
    retry_delay = 1.0  # seconds, doubled after each consecutive failure
    api_retries = 3  # googleapiclient's own backoff for metadata calls

    def __init__(self, config: Any):
        super().__init__(config)
        self.folder_id, self.folder_path = parse_folder(self.config.get("folder") or "")
        self.account_email = self.config.get("account_email") or ""
        self._service: Any = None
        self._folders: dict[tuple[str, str], str] = {}
        self._folder_id_checked = False

    # -- naming -------------------------------------------------------------------------------
    def _location(self) -> str:
        return self.folder_id or "/".join(self.folder_path) or "My Drive"

    def describe(self) -> str:
        where = posixpath.join(self._location(), self.root) if self.root else self._location()
        return f"gdrive://{self.account_email or '(no account)'}/{where}"

    def webhook_destination(self) -> dict[str, str]:
        return {"host": "drive.google.com", "account": self.account_email}

    def final_path(self, remote_path: str) -> str:
        return f"gdrive://{self._location()}/{self.full_path(remote_path)}"

    # -- connection -----------------------------------------------------------------------------
    def open(self) -> None:
        token = self.config.get("refresh_token")
        if not token:
            raise GoogleAccountError(
                "No Google account is connected for Google Drive delivery: "
                "connect a Google account on the delivery settings page."
            )
        self._service = drive_service(credentials_for(token))
        # Authenticates (a revoked grant fails here) and names the account for messages.
        about = self._execute(
            self._service.about().get(fields="user(emailAddress)"), "connecting to Google Drive"
        )
        self.account_email = about.get("user", {}).get("emailAddress") or self.account_email
        self._base_folder(create=True)

    def close(self) -> None:
        if self._service is not None:
            with suppress(Exception):
                self._service.close()
            self._service = None

    def _files(self) -> Any:
        if self._service is None:
            self.open()
        return self._service.files()

    # -- the interface ------------------------------------------------------------------------
    def check(self) -> str:
        folder = self._base_folder(create=True)
        name = PROBE_NAME.format(token=secrets.token_hex(4))
        media = MediaIoBaseUpload(io.BytesIO(b"probe\n"), mimetype="text/plain", resumable=False)
        body = {"name": name, "parents": [folder]}
        probe = self._execute(
            self._files().create(body=body, media_body=media, fields="id"), "writing a probe file"
        )
        self._execute(self._files().delete(fileId=probe["id"]), "removing the probe file")
        return f"Wrote and removed a probe file in {self.describe()}"

    def upload(
        self,
        local: LocalFile,
        remote_path: str,
        progress: ProgressCallback,
        resume: ResumePoint | None = None,
    ) -> None:
        folder, name = self._parent_and_name(remote_path, create=True)
        if folder is None:  # cannot happen with create=True; keeps the type checker honest
            raise TransferError(f"Could not create the folders of {remote_path} on Google Drive.")
        existing = self._files_named(folder, name)
        mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        media = _ChunkedFileUpload(
            str(local.path), mimetype=mimetype, chunksize=self.chunk_size, resumable=True
        )
        fields = "id,size,md5Checksum"
        try:
            if existing:
                request = self._files().update(
                    fileId=existing[0]["id"], media_body=media, fields=fields
                )
            else:
                body = {"name": name, "parents": [folder]}
                request = self._files().create(body=body, media_body=media, fields=fields)
            self._send_chunks(request, local, remote_path, progress)
        finally:
            media.stream().close()

    def verify(self, local: LocalFile, remote_path: str) -> bool:
        folder, name = self._parent_and_name(remote_path, create=False)
        if folder is None:
            return False
        found = self._files_named(folder, name)
        if not found:
            return False
        meta = self._execute(
            self._files().get(fileId=found[0]["id"], fields="id,size,md5Checksum"),
            f"checking {remote_path}",
        )
        if int(meta.get("size", -1)) != local.size:
            return False
        md5 = meta.get("md5Checksum")
        return md5 is None or md5 == local.md5

    # -- uploading ----------------------------------------------------------------------------
    def _send_chunks(
        self, request: Any, local: LocalFile, remote_path: str, progress: ProgressCallback
    ) -> None:
        """Drive the resumable upload. After a failure the next ``next_chunk``
        asks Google how much it has (``Content-Range: bytes */N``) and goes on
        from there; only consecutive failures without progress count."""
        what = f"uploading {remote_path}"
        reported = failures = 0
        response = None
        while response is None:
            try:
                status, response = request.next_chunk()
            except DRIVE_ERRORS as exc:
                error = self._translate(exc, what)
                if error.permanent:
                    raise error from None
                failures += 1
                if failures > self.max_retries:
                    raise TransferError(
                        f"{error.message} (gave up after {self.max_retries} retries)"
                    ) from None
                log.warning("Google Drive: %s; resuming (retry %d)", error.message, failures)
                request.http.close()  # drop a connection left in an unknown state
                time.sleep(self.retry_delay * 2 ** (failures - 1))
                continue
            done = local.size if response is not None else status.resumable_progress
            if done > reported:
                progress(done - reported)
                reported, failures = done, 0

    # -- folders ----------------------------------------------------------------------------------
    def _base_folder(self, *, create: bool) -> str | None:
        if self.folder_id and not self._folder_id_checked:
            self._check_folder_id()
        start = self.folder_id or "root"
        return self._walk(start, self.folder_path + [p for p in self.root.split("/") if p], create)

    def _parent_and_name(self, remote_path: str, *, create: bool) -> tuple[str | None, str]:
        dirs, name = posixpath.split(remote_path.strip("/"))
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

    # -- errors -------------------------------------------------------------------------------
    def _execute(self, request: Any, what: str, *, not_found: str | None = None) -> Any:
        try:
            return request.execute(num_retries=self.api_retries)
        except DRIVE_ERRORS as exc:
            if not_found and isinstance(exc, HttpError) and exc.resp.status == 404:
                raise TransferError(not_found, permanent=True) from None
            raise self._translate(exc, what) from None

    def _translate(self, exc: Exception, what: str) -> TransferError:
        """A TransferError saying what to fix; never a URL (upload session URLs
        are credentials) nor a token."""
        refused = refused_error(exc)
        if refused is not None:
            return refused
        if isinstance(exc, RefreshError):
            data = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
            if data.get("error") == "invalid_client":
                return TransferError(
                    "Google rejected this server's OAuth client: check GOOGLE_OAUTH_CLIENT_ID "
                    "and GOOGLE_OAUTH_CLIENT_SECRET.",
                    permanent=True,
                )
            if getattr(exc, "retryable", False):
                return TransferError(f"Google's token service failed while {what}")
            return GoogleGrantRevoked()
        if isinstance(exc, GoogleAuthError):
            return TransferError(
                f"Could not reach Google's token service while {what} ({type(exc).__name__})."
            )
        if isinstance(exc, HttpError):
            return self._translate_http(exc, what)
        return TransferError(
            f"Lost the connection to Google Drive while {what} ({type(exc).__name__})."
        )

    def _translate_http(self, exc: HttpError, what: str) -> TransferError:
        status = exc.resp.status
        details = exc.error_details if isinstance(exc.error_details, list) else []
        reason = next((d.get("reason") for d in details if isinstance(d, dict)), None) or ""
        # A Drive reason code, or nothing: the body's prose is not ours to show.
        reason = reason if re.fullmatch(r"[A-Za-z]{1,64}", str(reason)) else ""
        detail = f"HTTP {status}" + (f" {reason}" if reason else "")
        if status == 401:
            return GoogleGrantRevoked()
        if status == 429 or status >= 500 or reason in RATE_LIMIT_REASONS:
            return TransferError(f"Google Drive is busy ({detail}) while {what}.")
        if reason in FULL_REASONS:
            return TransferError(
                f"The Google Drive of {self.account_email or 'the connected account'} is full: "
                "free some space or add storage.",
                permanent=True,
            )
        if status == 404:
            return TransferError(
                f"Not found on Google Drive while {what}: was a folder deleted or moved to the bin?",
                permanent=True,
            )
        return TransferError(f"Google Drive refused {what} ({detail}).", permanent=True)
