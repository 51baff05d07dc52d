"""Secure copy (SCP) to the customer's server, with pinned host keys.

Where the account may run commands, files are copied under a temporary name
and moved into place with ``mv`` over the same connection, and checked with
``sha256sum``. Accounts restricted to scp (no shell) get a plain write; the
mode used is kept in ``placement_mode`` for the delivery log (``log_notes``).
"""

from __future__ import annotations

import hashlib
import io
import logging
import posixpath
import re
import shlex
from collections.abc import Mapping
from typing import Any

import paramiko
from scp import SCPClient, SCPException

from ..base import (
    HASH_CHUNK,
    LocalFile,
    ProgressCallback,
    ResumePoint,
    TransferError,
    probe_name,
    temp_name,
    temp_prefix,
)
from ..ssh.connection import CHANNEL_TIMEOUT, CONNECT_TIMEOUT
from ..ssh.destination import VERIFIED_REMOTELY, SSHDestination  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)

SCP_BUFFER = 256 * 1024
ATOMIC = "atomic (temp name + rename)"
PLAIN = "plain write (no shell)"
SIZE_ONLY = "size only (over SFTP; the server allows no shell for sha256sum)"
READ_BACK = "sha256 verified by reading the file back over scp"

TRANSIENT = (paramiko.SSHException, EOFError, OSError)


class SCPDestination(SSHDestination):
    kind = "scp"
    webhook_name = "ssh"
    label = "Secure copy (SCP) to my server"
    scheme = "scp"

    def __init__(self, config):
        super().__init__(config)
        self.placement_mode = ""

    def log_notes(self) -> list[tuple[str, str]]:
        placement = [("placement", f"SCP placement: {self.placement_mode}")] if self.placement_mode else []
        return placement + super().log_notes()

    # -- the interface ------------------------------------------------------------
    def check(self) -> str:
        folder = self.root or "."
        name = posixpath.join(folder, probe_name())
        if self.shell_available():
            self._makedirs(folder)
            self._put_bytes(b"probe\n", name)
            self._run_checked(f"rm -f -- {shlex.quote(name)}", folder, "removing the probe file")
            return f"Wrote and removed a probe file in {folder} over SCP ({ATOMIC})"
        self._makedirs(folder)
        self._put_bytes(b"", name)
        if self._sftp_remove(name):
            return f"Wrote and removed a probe file in {folder} over SCP ({PLAIN})"
        return (
            f"Wrote an empty probe file {name} over SCP ({PLAIN}); without a shell or SFTP "
            "it cannot be removed: delete it by hand"
        )

    def upload(
        self,
        local: LocalFile,
        remote_path: str,
        progress: ProgressCallback,
        resume: ResumePoint | None = None,
    ) -> None:
        target = self.full_path(remote_path)
        folder, name = posixpath.split(target)
        shell = self.shell_available()
        self.placement_mode = ATOMIC if shell else PLAIN
        self._makedirs(folder)
        if self.lanes_for(local) and self._upload_over_lanes(local, target, progress, resume):
            return
        if resume is not None:
            # The scp protocol has no offset: an interrupted copy starts over. The
            # state only records that an attempt began, so the next one can say so.
            if resume.state:
                resume.note(f"SCP cannot resume: sending {name} again from byte 0")
            resume.save({"scp": "started"})
        if not shell:
            self._put(local, target, folder, progress)
            return
        tmp = posixpath.join(folder, temp_name(name))
        # A cut connection leaves its temporary file behind; the retry removes it.
        self._remove_stale_parts(folder, name, f"cleaning up before uploading {target}")
        try:
            self._put(local, tmp, folder, progress)
            self._run_checked(
                f"mv -f -- {shlex.quote(tmp)} {shlex.quote(target)}", folder, f"moving {target} into place"
            )
        except TransferError:
            if self.connected:
                try:
                    self.run(f"rm -f -- {shlex.quote(tmp)}", timeout=30)
                except TRANSIENT:
                    pass
            raise

    def _upload_over_lanes(
        self, local: LocalFile, target: str, progress: ProgressCallback, resume: ResumePoint | None
    ) -> bool:
        """Big files to shell accounts go over OpenSSH lanes (``ssh.lanes``),
        which can continue a cut copy, unlike scp. False if the lanes could not
        start (nothing was sent over them)."""
        folder, name = posixpath.split(target)
        point = resume if resume is not None else ResumePoint()

        def create(temp: str) -> None:
            self._run_checked(f"touch -- {shlex.quote(temp)}", folder, f"creating {temp}")

        def clean(keep: str) -> None:
            self._remove_stale_parts(folder, name, f"cleaning up before uploading {target}", keep=keep)

        try:
            temp = self.upload_over_lanes(local, folder, name, point, progress, create, clean)
            if temp is None:
                return False
            self._run_checked(
                f"mv -f -- {shlex.quote(temp)} {shlex.quote(target)}", folder, f"moving {target} into place"
            )
        except TransferError as exc:
            temp = point.state.get("temp")
            if temp and self.connected and (exc.permanent or resume is None):
                try:
                    self.run(f"rm -f -- {shlex.quote(temp)}", timeout=30)
                    point.save({})
                except TRANSIENT:
                    pass
            raise
        return True

    def discard(self, remote_path: str, state: Mapping[str, Any]) -> None:
        """Remove the temporary files a cut copy of ``remote_path`` left (the
        delivery gave up, or is sent again from scratch). Only accounts with a
        shell use them; a plain write (no shell) leaves no temporary file."""
        if not self.shell_available():
            return
        folder, name = posixpath.split(self.full_path(remote_path))
        self._remove_stale_parts(folder, name, f"removing the temporary files of {name}")

    def _remove_stale_parts(self, folder: str, name: str, doing: str, keep: str = "") -> None:
        stale = f"{shlex.quote(folder or '.')}/{shlex.quote(temp_prefix(name))}*"
        if not keep:
            self._run_checked(f"rm -f -- {stale}", folder, doing)
            return
        script = f'for f in {stale}; do [ "$f" = "$1" ] || rm -f -- "$f"; done'
        self._run_checked(f"sh -c {shlex.quote(script)} sh {shlex.quote(keep)}", folder, doing)

    def verify(self, local: LocalFile, remote_path: str) -> bool:
        target = self.full_path(remote_path)
        try:
            if self.shell_available():
                return self._verify_with_shell(local, target)
            size = self._sftp_size(target)
            if size is not None:
                self.last_verification = SIZE_ONLY
                return size == local.size
            self.last_verification = READ_BACK
            return self._read_back_sha256(target, local.size) == local.sha256_hex()
        except TRANSIENT:
            if not self.connected:
                raise self.lost(f"checking {target}") from None
            raise

    # -- helpers --------------------------------------------------------------------
    def _verify_with_shell(self, local: LocalFile, target: str) -> bool:
        status, out, _err = self.run(f"wc -c < {shlex.quote(target)}", timeout=60)
        if status != 0:
            return False
        if int(out.strip() or -1) != local.size:
            return False
        matches = self.content_matches(local, target)
        if matches is None:
            self.last_verification = "size only (sha256sum failed on the server)"
            return True
        return matches

    def _run_checked(self, command: str, folder: str, doing: str) -> None:
        try:
            status, _out, err = self.run(command)
        except TRANSIENT:
            raise self.lost(doing) from None
        if status != 0:
            if "Permission denied" in err:
                raise self.denied(folder or ".")
            raise TransferError(f"Failed while {doing} on {self.where}: {err.strip()[:300]}")

    def _makedirs(self, folder: str) -> None:
        if folder in ("", ".", "/"):
            return
        if self.shell_available():
            self._run_checked(f"mkdir -p -- {shlex.quote(folder)}", folder, f"creating {folder}")
        else:
            self._makedirs_over_scp(folder)

    def _makedirs_over_scp(self, folder: str) -> None:
        """Without a shell, enter each folder with scp's own recursive protocol
        ("D" records), which creates the missing ones and leaves the others."""
        base = "/" if folder.startswith("/") else "."
        parts = [part for part in folder.split("/") if part not in ("", ".")]
        chan = self._open_channel(f"scp -r -t -- {shlex.quote(base)}")
        try:
            _confirm(chan, folder, self)
            for part in parts:
                chan.sendall(f"D0755 0 {part}\n".encode())
                _confirm(chan, folder, self)
            for _part in parts:
                chan.sendall(b"E\n")
                _confirm(chan, folder, self)
        except TRANSIENT:
            raise self.lost(f"creating {folder}") from None
        finally:
            chan.close()

    def _put(self, local: LocalFile, remote: str, folder: str, progress: ProgressCallback) -> None:
        sent_so_far = 0

        def report(_name: bytes, _size: int, sent: int) -> None:
            nonlocal sent_so_far
            if sent > sent_so_far:
                progress(sent - sent_so_far)
                sent_so_far = sent

        client = SCPClient(
            self.transport, buff_size=SCP_BUFFER, socket_timeout=CHANNEL_TIMEOUT, progress=report
        )
        try:
            with open(local.path, "rb") as src:
                client.putfo(src, remote, mode="0644", size=local.size)
        except SCPException as exc:
            if not self.connected:
                raise self.lost(f"uploading {remote}") from None
            if "Permission denied" in str(exc):
                raise self.denied(folder or ".") from None
            # Not the server's words (scp's stderr): the portal's own.
            raise TransferError(
                f"The SSH server {self.where} refused the SCP upload of {remote}"
            ) from None
        except TRANSIENT:
            raise self.lost(f"uploading {remote}") from None
        finally:
            client.close()

    def _put_bytes(self, data: bytes, remote: str) -> None:
        client = SCPClient(self.transport, socket_timeout=CHANNEL_TIMEOUT)
        try:
            client.putfo(io.BytesIO(data), remote, mode="0644", size=len(data))
        except SCPException as exc:
            if "Permission denied" in str(exc):
                raise self.denied(posixpath.dirname(remote) or ".") from None
            # Not the server's words (scp's stderr): the portal's own.
            raise TransferError(
                f"The SSH server {self.where} refused the SCP upload of {remote}"
            ) from None
        except TRANSIENT:
            raise self.lost(f"writing {remote}") from None
        finally:
            client.close()

    def _sftp_remove(self, path: str) -> bool:
        try:
            sftp = paramiko.SFTPClient.from_transport(self.transport)
        except TRANSIENT:
            return False
        try:
            sftp.remove(path)
            return True
        except OSError:
            return False
        finally:
            sftp.close()

    def _sftp_size(self, target: str) -> int | None:
        """Size through the SFTP subsystem, -1 if missing, None if no SFTP."""
        try:
            sftp = paramiko.SFTPClient.from_transport(self.transport)
        except TRANSIENT:
            if not self.connected:
                raise
            return None
        try:
            return sftp.stat(target).st_size
        except FileNotFoundError:
            return -1
        finally:
            sftp.close()

    def _read_back_sha256(self, target: str, expected_size: int) -> str | None:
        """Fetch the file with ``scp -f`` and hash it as it streams in."""
        chan = self._open_channel(f"scp -f -- {shlex.quote(target)}")
        try:
            chan.sendall(b"\0")
            header = _read_line(chan)
            match = re.match(rb"C[0-7]{4} (\d+) ", header)
            if not match or int(match.group(1)) != expected_size:
                return None
            chan.sendall(b"\0")
            digest, left = hashlib.sha256(), expected_size
            while left > 0:
                chunk = chan.recv(min(HASH_CHUNK, left))
                if not chunk:
                    raise EOFError("scp closed early")
                digest.update(chunk)
                left -= len(chunk)
            chan.recv(1)
            chan.sendall(b"\0")
            return digest.hexdigest()
        finally:
            chan.close()

    def _open_channel(self, command: str) -> paramiko.Channel:
        if self.transport is None:
            raise TransferError(f"Not connected to {self.where}")
        chan = self.transport.open_session(timeout=CONNECT_TIMEOUT)
        chan.settimeout(CHANNEL_TIMEOUT)
        chan.exec_command(command)
        return chan


def _read_line(chan: paramiko.Channel) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        byte = chan.recv(1)
        if not byte:
            break
        line += byte
        if len(line) > 4096:
            break
    return line


def _confirm(chan: paramiko.Channel, folder: str, dest: SCPDestination) -> None:
    """Read scp's one-byte answer: 0 is OK, 1 and 2 are followed by an error line."""
    code = chan.recv(1)
    if code == b"\0":
        return
    message = _read_line(chan).decode(errors="replace").strip() if code else "no answer"
    if "Permission denied" in message:
        raise dest.denied(folder)
    raise TransferError(f"SCP on {dest.where} refused to create {folder}: {message}")
