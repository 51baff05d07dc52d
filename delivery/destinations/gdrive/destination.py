"""Google Drive of a connected Google account (OAuth, ``drive.file`` scope).

Files go to ``<folder>/<root>/<room_id>/<conf_num>/<name>``. ``folder`` is a
folder ID (or a Drive folder link) used as is, or a path such as
``Recordings/Portal`` whose folders are found or created. With ``drive.file``
the portal only sees files and folders it created itself, so a folder ID must
be one the portal made, and a path never picks up the user's own folders.

Uploads are resumable: the file appears in Drive only once complete, a lost
connection or a 5xx resumes from what Google has, and a file already present
under the same name is updated in place (a new revision) rather than duplicated.
The upload session URI is kept with the file's row (ResumePoint, encrypted)
so a later run, after a killed worker, asks Google where to continue. An
abandoned session holds nothing visible and expires after a week, so there
is nothing for discard() to remove.
"""

from __future__ import annotations

import io
import logging
import mimetypes
import posixpath
import re
import time
from contextlib import suppress
from typing import Any

from django.db import transaction
from django.urls import reverse
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaFileUpload, MediaIoBaseUpload

from ..base import (
    Destination,
    LocalFile,
    Panel,
    ProgressCallback,
    ResumePoint,
    TransferError,
    package_template,
    probe_name,
)
from . import KIND
from .errors import DRIVE_ERRORS, NETWORK_ERRORS, GoogleAccountError, translate
from .folders import DriveFolders
from .form import GoogleDriveForm, parse_folder
from .oauth import credentials_for, drive_service

log = logging.getLogger(__name__)

UPLOAD_CHUNK = 8 * 1024 * 1024  # Drive wants chunks in multiples of 256 KiB




class _ChunkedFileUpload(MediaFileUpload):
    """Sends each chunk as bytes read from the file rather than as a slice of
    the open file: httplib2 and the token refresh re-send a request body after a
    stale connection or a 401, and a stream slice would already be used up."""

    def has_stream(self) -> bool:
        return False


class GoogleDriveDestination(DriveFolders, Destination):
    kind = KIND
    webhook_name = "gdrive"
    action_only_secrets = ("refresh_token",)
    label = "Save on Google Drive"
    form_class = GoogleDriveForm
    urls = "delivery.destinations.gdrive.urls"
    account_service = "Google Drive"

    chunk_size = UPLOAD_CHUNK
    max_retries = 5  # consecutive failed chunks before giving up (transient)
    retry_delay = 1.0  # seconds, doubled after each consecutive failure
    api_retries = 3  # googleapiclient's own backoff for metadata calls

    # -- the settings pages (the Google account card and buttons) --------------------------------
    @staticmethod
    def _connected(destination: Any) -> bool:
        return bool((destination.secrets or {}).get("refresh_token"))

    @classmethod
    def settings_panel(cls, destination: Any) -> Panel:
        return Panel(
            package_template(__file__, "account_panel.html"),
            {"connected": cls._connected(destination), "problem": cls.needs_attention(destination)},
        )

    @classmethod
    def list_note(cls, destination: Any) -> str:
        if cls._connected(destination):
            return f"Google account: {destination.config.get('account_email') or 'connected'}"
        return "No Google account connected"

    @classmethod
    def row_actions(cls, destination: Any) -> list[tuple[str, str]]:
        connected = cls._connected(destination)
        if connected and not cls.needs_attention(destination):
            return []
        url = reverse("delivery:google_connect", args=[destination.project.app_id, destination.pk])
        return [("Reconnect Google account" if connected else "Connect Google account", url)]

    @classmethod
    def on_delete(cls, destination: Any) -> None:
        if token := (destination.secrets or {}).get("refresh_token"):
            from .actions import revoke_quietly

            transaction.on_commit(lambda: revoke_quietly(token))

    @classmethod
    def start_headless_connect(cls, destination: Any, *, acting_user: Any) -> dict[str, str]:
        from .actions import do_start_headless_connect
        from .connect import google_redirect_uri

        url = do_start_headless_connect(destination, acting_user=acting_user)
        return {"CONNECT_URL": url, "REDIRECT_URI": google_redirect_uri()}

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
        name = probe_name()
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
        resume = resume if resume is not None else ResumePoint()
        try:
            if existing:
                request = self._files().update(
                    fileId=existing[0]["id"], media_body=media, fields=fields
                )
            else:
                body = {"name": name, "parents": [folder]}
                request = self._files().create(body=body, media_body=media, fields=fields)
            start = self._continue_session(request, local, remote_path, resume)
            if start is not None:
                self._send_chunks(request, local, remote_path, progress, resume, start)
        finally:
            media.stream().close()

    def _continue_session(
        self, request: Any, local: LocalFile, remote_path: str, resume: ResumePoint
    ) -> int | None:
        """Point ``request`` at the upload session an earlier run saved and
        return the byte Google asks to continue from (0 for a new session);
        None if that session already holds the whole file."""
        state = resume.state
        uri = state.get("session")
        if not uri or (state.get("path"), state.get("size")) != (remote_path, local.size):
            return 0
        what = f"asking Google Drive where to continue {remote_path}"
        try:
            # Google's documented status query of a resumable upload.
            answer, _content = request.http.request(
                uri, "PUT", headers={"Content-Range": f"bytes */{local.size}", "content-length": "0"}
            )
        except NETWORK_ERRORS as exc:
            raise translate(exc, what, self.account_email) from None
        if answer.status in (200, 201):
            resume.note("the upload session already holds the whole file")
            return None
        if answer.status in (404, 410):
            resume.note("the upload session expired; starting the file again")
            resume.save({})
            return 0
        if answer.status != 308:
            raise translate(HttpError(answer, b""), what, self.account_email)
        received = re.fullmatch(r"bytes=0-(\d+)", answer.get("range", ""))
        offset = int(received.group(1)) + 1 if received else 0
        request.resumable_uri = uri
        request.resumable_progress = offset
        resume.note(f"continuing the upload session at byte {offset} of {local.size}")
        return offset

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
        self,
        request: Any,
        local: LocalFile,
        remote_path: str,
        progress: ProgressCallback,
        resume: ResumePoint,
        start: int,
    ) -> None:
        """Drive the resumable upload. After a failure the next ``next_chunk``
        asks Google how much it has (``Content-Range: bytes */N``) and goes on
        from there; only consecutive failures without progress count. The
        session URI is saved (encrypted: it is a bearer capability, never
        logged) as soon as Google gives it, for a later run to continue."""
        what = f"uploading {remote_path}"
        reported, failures = start, 0
        response = None
        while response is None:
            try:
                status, response = request.next_chunk()
            except DRIVE_ERRORS as exc:
                self._keep_session(request, local, remote_path, resume)
                error = translate(exc, what, self.account_email)
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
            if response is None:
                self._keep_session(request, local, remote_path, resume)
            done = local.size if response is not None else status.resumable_progress
            if done > reported:
                progress(done - reported)
                reported, failures = done, 0

    @staticmethod
    def _keep_session(request: Any, local: LocalFile, remote_path: str, resume: ResumePoint) -> None:
        uri = request.resumable_uri
        if uri and resume.state.get("session") != uri:
            resume.save({"session": uri, "path": remote_path, "size": local.size})

    # -- errors -------------------------------------------------------------------------------
    def _execute(self, request: Any, what: str, *, not_found: str | None = None) -> Any:
        try:
            return request.execute(num_retries=self.api_retries)
        except DRIVE_ERRORS as exc:
            if not_found and isinstance(exc, HttpError) and exc.resp.status == 404:
                raise TransferError(not_found, permanent=True) from None
            raise translate(exc, what, self.account_email) from None

