"""SFTP to the customer's server (paramiko), with pinned host keys."""

from __future__ import annotations

import errno
import logging
import os
import posixpath
import queue
import secrets
import stat
import threading

import paramiko

from .base import LocalFile, ProgressCallback, ResumePoint, TransferError
from .ssh import CHANNEL_TIMEOUT, MAX_PACKET_SIZE, WINDOW_SIZE, SSHDestination

logger = logging.getLogger(__name__)

READ_CHUNK = 1024 * 1024
# Big files go over several SFTP channels of the one connection, each writing
# its own blocks of the temp file: one pipelined stream leaves the client idle
# waiting for the server's window (bench/README.md, Delivery: SFTP).
STREAMS = 4
STREAM_BLOCK = 8 * READ_CHUNK
PARALLEL_MIN = 4 * STREAM_BLOCK
VERIFIED_REMOTELY = "sha256 verified remotely"
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

    def open(self) -> None:
        super().open()
        try:
            self.sftp = paramiko.SFTPClient.from_transport(
                self.transport, window_size=WINDOW_SIZE, max_packet_size=MAX_PACKET_SIZE
            )
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self.close()
            raise TransferError(
                f"The server {self.where} refused the SFTP subsystem for user {self.user!r}: "
                f"{exc or 'channel closed'}. Enable SFTP for this user.",
                permanent=self.connected,
            ) from None
        self.sftp.get_channel().settimeout(CHANNEL_TIMEOUT)

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
        name = posixpath.join(folder, f".portal-probe-{secrets.token_hex(4)}.txt")
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
        tmp = posixpath.join(folder, f".{name}.part-{secrets.token_hex(4)}")

        def send() -> None:
            self._makedirs(folder)
            self._remove_stale_parts(folder, name)
            self._put(local, tmp, progress)
            self._rename(tmp, target)

        try:
            self._guard(f"uploading {target}", folder, send)
        except TransferError:
            if self.connected:
                self._remove_quietly(tmp)
            raise

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
            digest = self.remote_sha256(target)
        except (paramiko.SSHException, EOFError, OSError):
            raise self.lost(f"computing the sha256 of {target}") from None
        if digest is None:
            self.last_verification = SIZE_ONLY
        elif digest != local.sha256_hex():
            logger.info("%s: sha256 of %s differs", self.describe(), target)
            return False
        else:
            self.last_verification = VERIFIED_REMOTELY
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

    def _remove_stale_parts(self, folder: str, name: str) -> None:
        """A cut connection leaves its temporary file behind; the retry removes it."""
        prefix = f".{name}.part-"
        for entry in self._client.listdir(folder or "."):
            if entry.startswith(prefix):
                self._remove_quietly(posixpath.join(folder, entry))

    def _put(self, local: LocalFile, tmp: str, progress: ProgressCallback) -> None:
        if self.streams <= 1 or local.size < PARALLEL_MIN:
            with open(local.path, "rb") as src, self._client.open(tmp, "wb") as dst:
                # Pipelined: writes are not waited for one by one; close() collects
                # every acknowledgement and raises the first error.
                dst.set_pipelined(True)
                fit_requests(self._client, dst)
                while chunk := src.read(READ_CHUNK):
                    dst.write(chunk)
                    progress(len(chunk))
            return
        with self._client.open(tmp, "wb"):
            pass  # created (or refused) on the main channel, as for small files
        _ParallelPut(self, local, tmp).run(progress)

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


def fit_requests(client: paramiko.SFTPClient, dst: paramiko.SFTPFile) -> None:
    """Shrink writes so each request fits one SSH packet: paramiko's 32 KiB writes are
    29 bytes over OpenSSH's 32 KiB channel packets and each went as two packets
    (20 % more client CPU, a third less speed on one stream)."""
    channel = client.get_channel()
    if channel is None:
        return
    # channel data header (paramiko keeps 64 bytes free) + SFTP WRITE header
    room = channel.out_max_packet_size - 64 - (25 + len(dst.handle))
    dst.MAX_REQUEST_SIZE = max(4096, min(paramiko.SFTPFile.MAX_REQUEST_SIZE, room))


class _ParallelPut:
    """Write one file's STREAM_BLOCK blocks over several SFTP channels of the
    destination's transport. Workers take the next block as they free up; the
    calling thread reports progress (the callback may raise to stop the upload)."""

    def __init__(self, dest: SFTPDestination, local: LocalFile, tmp: str):
        self.dest, self.local, self.tmp = dest, local, tmp
        self.next_offset = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.sent: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.errors: list[BaseException] = []
        self.clients: list[paramiko.SFTPClient] = []

    def run(self, progress: ProgressCallback) -> None:
        self.clients = [self.dest._client] + self._extra_clients(self.dest.streams - 1)
        fd = os.open(self.local.path, os.O_RDONLY)
        workers = [
            threading.Thread(target=self._work, args=(client, fd), daemon=True)
            for client in self.clients
        ]
        try:
            for worker in workers:
                worker.start()
            while any(w.is_alive() for w in workers) or not self.sent.empty():
                try:
                    progress(self.sent.get(timeout=0.2))
                except queue.Empty:
                    pass
        except BaseException:
            self.stop.set()
            raise
        finally:
            self.stop.set()
            for client in self.clients[1:]:
                client.close()  # also wakes a worker waiting for window space
            for worker in workers:
                worker.join()
            os.close(fd)
        if self.errors:
            raise self.errors[0]

    def _extra_clients(self, count: int) -> list[paramiko.SFTPClient]:
        clients = []
        for _ in range(count):
            try:
                client = paramiko.SFTPClient.from_transport(
                    self.dest.transport, window_size=WINDOW_SIZE, max_packet_size=MAX_PACKET_SIZE
                )
            except (paramiko.SSHException, EOFError, OSError):
                break  # e.g. the server's MaxSessions: go on with the channels we have
            if client is None:
                break
            client.get_channel().settimeout(CHANNEL_TIMEOUT)
            clients.append(client)
        return clients

    def _take(self) -> tuple[int, int] | None:
        with self.lock:
            if self.stop.is_set() or self.next_offset >= self.local.size:
                return None
            start = self.next_offset
            self.next_offset = min(self.local.size, start + STREAM_BLOCK)
            return start, self.next_offset

    def _work(self, client: paramiko.SFTPClient, fd: int) -> None:
        try:
            with client.open(self.tmp, "r+") as dst:
                dst.set_pipelined(True)
                fit_requests(client, dst)
                while block := self._take():
                    offset, end = block
                    dst.seek(offset)
                    while offset < end and not self.stop.is_set():
                        chunk = os.pread(fd, min(READ_CHUNK, end - offset), offset)
                        if not chunk:
                            raise TransferError(f"{self.local.path} shrank while being uploaded")
                        dst.write(chunk)
                        offset += len(chunk)
                        self.sent.put(len(chunk))
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            if not self.stop.is_set():
                self.errors.append(exc)
            self.stop.set()
