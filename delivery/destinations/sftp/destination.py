"""SFTP to the customer's server (paramiko), with pinned host keys."""

from __future__ import annotations

import errno
import logging
import posixpath
import stat
from collections.abc import Mapping
from typing import Any

import paramiko

from ..base import (
    LocalFile,
    ProgressCallback,
    ResumePoint,
    TransferError,
    probe_name,
    temp_name,
    temp_prefix,
)
from ..ssh.connection import CHANNEL_TIMEOUT, MAX_PACKET_SIZE, WINDOW_SIZE
from ..ssh.destination import VERIFIED_REMOTELY, SSHDestination  # noqa: F401 (re-exported)
from .put import (
    AHEAD,
    PARALLEL_MIN,
    REQUEST_PACKETS,
    STREAMS,
    ParallelPut,
    packets_per_request,
    put_stream,
)

logger = logging.getLogger(__name__)

SIZE_ONLY = "size only (the server allows no shell for sha256sum)"


class SFTPDestination(SSHDestination):
    kind = "sftp"
    webhook_name = "sftp"
    label = "SFTP to my server"
    scheme = "sftp"

    def __init__(self, config):
        super().__init__(config)
        self.sftp: paramiko.SFTPClient | None = None
        self.streams = STREAMS
        self.request_packets = REQUEST_PACKETS
        self.ahead = AHEAD  # bench/delivery.py may tune it

    def start(self, timeout: float) -> None:
        assert self.transport is not None
        try:
            channel = self.transport.open_session(
                window_size=WINDOW_SIZE, max_packet_size=MAX_PACKET_SIZE, timeout=timeout
            )
            channel.invoke_subsystem("sftp")
            self.sftp = paramiko.SFTPClient(channel)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            if self.reused:
                raise  # a kept connection that no longer answers: open() logs in afresh
            self.close()
            raise TransferError(
                f"The server {self.where} refused the SFTP subsystem for user {self.user!r}: "
                f"{exc or 'channel closed'}. Enable SFTP for this user.",
                permanent=self.connected,
            ) from None
        channel.settimeout(CHANNEL_TIMEOUT)

    def close(self) -> None:
        if self.sftp is not None:
            try:
                self.sftp.close()
            except Exception:  # noqa: BLE001 - close must not raise
                pass
            self.sftp = None
        super().close()

    @property
    def connected(self) -> bool:
        channel = self.sftp.get_channel() if self.sftp is not None else None
        return super().connected and channel is not None and not channel.closed

    # -- the interface ------------------------------------------------------------
    def check(self) -> str:
        folder = self.root or "."
        name = posixpath.join(folder, probe_name())
        self._guard("writing a probe file", folder, lambda: self._probe(folder, name))
        shell = "sha256 checked on the server" if self.shell_available() else "size checked only"
        return f"Wrote and removed a probe file in {folder} over SFTP ({shell})"

    def upload(
        self,
        local: LocalFile,
        remote_path: str,
        progress: ProgressCallback,
        resume: ResumePoint | None = None,
    ) -> None:
        target = self.full_path(remote_path)
        folder, name = posixpath.split(target)
        point = resume if resume is not None else ResumePoint()
        tmp = ""

        def send() -> None:
            nonlocal tmp
            self._makedirs(folder)
            if self.lanes_for(local):
                sent = self.upload_over_lanes(
                    local, folder, name, point, progress, create=self._create_empty,
                    clean=lambda keep: self._remove_stale_parts(folder, name, keep=keep),
                )  # fmt: skip
                if sent is not None:
                    tmp = sent
                    self._rename(tmp, target)
                    return
            tmp, offset = self._resume_from(point, folder, name, local)
            self._remove_stale_parts(folder, name, keep=tmp)
            if offset:
                point.note(f"resuming {target} at byte {offset} of {local.size}")
            else:
                point.save({"temp": tmp, "offset": 0})
            self._put(local, tmp, offset, progress, lambda done: point.save({"temp": tmp, "offset": done}))
            self._rename(tmp, target)

        try:
            self._guard(f"uploading {target}", folder, send)
        except TransferError as exc:
            # A transient failure keeps the temp file for the next run to continue
            # (when a caller keeps resume state); otherwise it is of no use.
            tmp = tmp or point.state.get("temp") or ""
            if tmp and self.connected and (exc.permanent or resume is None):
                self._remove_quietly(tmp)
                point.save({})
            raise

    def discard(self, remote_path: str, state: Mapping[str, Any]) -> None:
        """Remove the temporary file a half-sent upload left (the one ``state``
        names, and any other a cut connection left) when the delivery gives up
        or is sent again from scratch. Only names of our own pattern in the
        file's folder are removed, whatever the state says."""
        folder, name = posixpath.split(self.full_path(remote_path))
        try:
            self._remove_stale_parts(folder, name)
        except FileNotFoundError:
            pass  # the folder itself is gone: nothing left in it

    def verify(self, local: LocalFile, remote_path: str) -> bool:
        target = self.full_path(remote_path)
        folder = posixpath.dirname(target) or "."
        try:
            size = self._guard(
                f"checking {target}", folder, lambda: self._client.stat(target).st_size, missing_ok=True
            )
        except FileNotFoundError:
            return False
        if size != local.size:
            logger.info("%s: %s has %s bytes, expected %s", self.describe(), target, size, local.size)
            return False
        try:
            matches = self.content_matches(local, target)
        except (paramiko.SSHException, EOFError, OSError):
            raise self.lost(f"checking the content of {target}") from None
        if matches is None:
            self.last_verification = SIZE_ONLY
        elif not matches:
            logger.info("%s: the content of %s differs", self.describe(), target)
            return False
        logger.info("%s: %s verified (%s)", self.describe(), target, self.last_verification)
        return True

    # -- helpers --------------------------------------------------------------------
    @property
    def _client(self) -> paramiko.SFTPClient:
        if self.sftp is None:
            raise TransferError(f"Not connected to {self.where}")
        return self.sftp

    def _guard(self, doing: str, folder: str, action, *, missing_ok: bool = False):
        """Run ``action`` and turn paramiko and socket errors into TransferErrors
        (a missing file is passed through when ``missing_ok``)."""
        try:
            return action()
        except FileNotFoundError:
            if missing_ok:
                raise
            raise TransferError(f"No such file or folder on {self.where} while {doing}") from None
        except PermissionError:
            raise self.denied(folder) from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            # EOF or a protocol error means the SFTP channel is gone, even if
            # the transport has not noticed yet.
            if isinstance(exc, (paramiko.SSHException, EOFError)) or not self.connected:
                raise self.lost(doing) from None
            reason = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                raise TransferError(f"The server {self.where} is out of space while {doing}") from None
            raise TransferError(f"SFTP error on {self.where} while {doing}: {reason}") from None

    def _probe(self, folder: str, name: str) -> None:
        self._makedirs(folder)
        with self._client.open(name, "wb") as fh:
            fh.write(b"probe\n")
        self._client.remove(name)

    def _makedirs(self, folder: str) -> None:
        if folder in ("", ".", "/"):
            return
        try:
            if stat.S_ISDIR(self._client.stat(folder).st_mode or 0):
                return
            raise TransferError(f"{folder!r} on {self.where} is a file, not a folder", permanent=True)
        except FileNotFoundError:
            pass
        self._makedirs(posixpath.dirname(folder))
        try:
            self._client.mkdir(folder)
        except PermissionError:
            raise self.denied(posixpath.dirname(folder) or ".") from None
        except OSError:
            # Another worker may have created it meanwhile.
            if not stat.S_ISDIR(self._client.stat(folder).st_mode or 0):
                raise

    def _resume_from(self, point: ResumePoint, folder: str, name: str, local: LocalFile) -> tuple[str, int]:
        """The temp file and offset to continue from, or a new temp name and 0.

        The offset is the acknowledged prefix saved by the last run, not the temp
        file's size: the channels write blocks out of order, so the size can run
        ahead of holes. The file must still be at least that long (nobody
        truncated it). Its content is not read back: the name carries a random
        token only this delivery knows, and verify() compares the sha256 of the
        whole file on the server afterwards (size only without a shell)."""
        fresh = posixpath.join(folder, temp_name(name))
        temp, offset = point.state.get("temp"), point.state.get("offset")
        if not (isinstance(temp, str) and isinstance(offset, int) and 0 < offset <= local.size):
            return fresh, 0
        if posixpath.dirname(temp) != folder or not posixpath.basename(temp).startswith(temp_prefix(name)):
            return fresh, 0
        try:
            size = self._client.stat(temp).st_size or 0
        except FileNotFoundError:
            point.note(f"the partial file {temp} is gone: sending {name} from byte 0")
            return fresh, 0
        if size < offset:
            point.note(f"the partial file {temp} is shorter than recorded: sending {name} from byte 0")
            return fresh, 0
        return temp, offset

    def _create_empty(self, path: str) -> None:
        with self._client.open(path, "wb"):
            pass

    def _remove_stale_parts(self, folder: str, name: str, keep: str = "") -> None:
        """A cut connection leaves its temporary file behind; the retry removes it
        (unless it is the one being continued)."""
        prefix = temp_prefix(name)
        for entry in self._client.listdir(folder or "."):
            path = posixpath.join(folder, entry)
            if entry.startswith(prefix) and path != keep:
                self._remove_quietly(path)

    def _put(self, local: LocalFile, tmp: str, offset: int, progress: ProgressCallback, checkpoint) -> None:
        packets = packets_per_request(self._client, self.request_packets)
        if self.streams <= 1 or local.size - offset < PARALLEL_MIN:
            put_stream(self._client, local, tmp, offset, progress, checkpoint, packets)
            return
        if not offset:
            with self._client.open(tmp, "wb"):
                pass  # created (or refused) on the main channel, as for small files
        assert self.transport is not None
        ParallelPut(self.transport, self._client, local, tmp, offset, self.ahead).run(
            self.streams, progress, checkpoint, packets
        )

    def _rename(self, tmp: str, target: str) -> None:
        try:
            self._client.posix_rename(tmp, target)
            return
        except OSError:
            if not self.connected:
                raise
        # Servers without the posix-rename extension refuse to overwrite.
        self._remove_quietly(target)
        self._client.rename(tmp, target)

    def _remove_quietly(self, path: str) -> None:
        try:
            self._client.remove(path)
        except (OSError, paramiko.SSHException, EOFError):
            pass


