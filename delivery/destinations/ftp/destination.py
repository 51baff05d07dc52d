"""FTP, or explicit FTPS (AUTH TLS, protected data channel), to the customer's server.

Files go to ``.<name>.part`` in the target folder and are renamed into place
once their size matches. The temporary name is the same on every attempt so a
retry after a cut connection or a killed worker continues it from its size
(SIZE, then REST + STOR) instead of starting over; it is deleted when the
delivery gives up or is sent again from scratch (discard). Big files go over
two more sessions at once where the server allows it (lanes.py).

Certificates: a chain that verifies against the system CAs is accepted; any
other certificate is accepted only if its fingerprint (``SHA256:<base64>``,
OpenSSH style) equals the ``pinned_fingerprint`` the administrator trusted.
"""

from __future__ import annotations

import ftplib
import io
import logging
import posixpath
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, NoReturn

from portal import egress

from ..base import (
    Destination,
    LocalFile,
    ProgressCallback,
    ResumePoint,
    TransferError,
    UntrustedHostKey,
    probe_name,
)
from . import lanes
from .connection import (
    GuardedFTP,
    GuardedFTPS,
    certificate_fingerprint,
    reply_code,
    reply_line,
    same_fingerprint,
    unverified_context,
    verified_context,
)
from .form import FTPForm

logger = logging.getLogger(__name__)

BLOCK_SIZE = 1024 * 1024
TAIL_CHECK = 64 * 1024
TIMEOUT = 60.0
# How the server's administrator reads the certificate's fingerprint to compare.
CHECK_COMMAND = "openssl x509 -in cert.pem -outform der | openssl dgst -sha256 -binary | base64"


def tls_certificate_fingerprint(host: str, port: int = 21, timeout: float = TIMEOUT) -> str:
    """Connect, start TLS and return the fingerprint of the certificate the
    server presents, without logging in (for "trust this certificate")."""
    dest = FTPDestination({"host": host, "port": port, "tls": "explicit"})
    dest.timeout = timeout
    with dest._errors("reading the TLS certificate"):
        ftps, der = dest._start_tls(unverified_context())
    ftps.close()
    return certificate_fingerprint(der)


class FTPDestination(Destination):
    kind = "ftp"
    webhook_name = "ftp"
    label = "FTP / FTPS to my server"
    form_class = FTPForm
    pinned_key_name = "certificate"
    timeout = TIMEOUT

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        self.host = str(self.config["host"])
        self.port = int(self.config.get("port") or 21)
        self.username = str(self.config.get("username") or "")
        self.passive = bool(self.config.get("passive", True))
        self.tls = (self.config.get("tls") or "none") == "explicit"
        self.pinned_fingerprint: str = self.config.get("pinned_fingerprint") or ""
        # Set once connected over TLS: what the server showed, for the CLI/pages.
        self.presented_fingerprint: str | None = None
        self._ftp: ftplib.FTP | None = None
        self._home = "/"
        self._folders: set[str] = set()
        self.lanes_used = 0  # sessions the last upload's lanes used (0: one session)
        self.lanes_files = 0  # files sent over lanes through this instance

    def __repr__(self) -> str:
        return f"<FTPDestination {self.describe()}>"

    def describe(self) -> str:
        scheme = "ftps" if self.tls else "ftp"
        return f"{scheme}://{self.username}@{self.host}:{self.port}/{self.root}"

    def final_path(self, remote_path: str) -> str:
        return self._abs(remote_path)

    def log_notes(self) -> list[tuple[str, str]]:
        if not self.lanes_files:
            return []
        many = "file" if self.lanes_files == 1 else "files"
        return [("lanes", f"{self.lanes_files} big {many} went over {lanes.LANES} FTP sessions at once")]

    # -- connection --------------------------------------------------------------
    def open(self) -> None:
        self.close()
        ftp, self.presented_fingerprint = self._session()
        with self._errors("opening the FTP session"):
            try:
                self._home = ftp.pwd() or "/"
            except BaseException:
                ftp.close()
                raise
        self._ftp = ftp
        self._folders = {self._home}

    def _session(self) -> tuple[ftplib.FTP, str | None]:
        """A new session, logged in and set for binary transfers, and the
        fingerprint of the certificate it was shown (TLS)."""
        with self._errors("opening the FTP session", drop=False):
            ftp, fingerprint = self._connect()
            try:
                self._login(ftp)
                if isinstance(ftp, ftplib.FTP_TLS):
                    ftp.prot_p()
                ftp.set_pasv(self.passive)
                ftp.voidcmd("TYPE I")
            except BaseException:
                ftp.close()
                raise
        return ftp, fingerprint

    def close(self) -> None:
        ftp, self._ftp = self._ftp, None
        if ftp is None:
            return
        with suppress(Exception):
            ftp.quit()
        with suppress(Exception):
            ftp.close()

    def _connect(self) -> tuple[ftplib.FTP, str | None]:
        if not self.tls:
            ftp = GuardedFTP(timeout=self.timeout)
            ftp.connect(self.host, self.port)
            return ftp, None
        try:
            ftps, der = self._start_tls(verified_context())
            return ftps, certificate_fingerprint(der)
        except ssl.SSLCertVerificationError:
            pass  # self-signed, private CA or another name: the pin decides
        ftps, der = self._start_tls(unverified_context())
        fingerprint = certificate_fingerprint(der)
        pinned = self.pinned_fingerprint
        if not (pinned and same_fingerprint(fingerprint, pinned)):
            ftps.close()
            raise UntrustedHostKey(
                fingerprint, pinned=pinned or None, what="TLS certificate", check_command=CHECK_COMMAND
            )
        ftps.pinned_der = der
        return ftps, fingerprint

    def _start_tls(self, context: ssl.SSLContext) -> tuple[GuardedFTPS, bytes]:
        """Connect and send AUTH TLS; return the session and the server's DER certificate."""
        ftps = GuardedFTPS(context=context, timeout=self.timeout)
        try:
            ftps.connect(self.host, self.port)
            try:
                ftps.auth()
            except ftplib.error_perm as exc:
                raise self._error(
                    f"The server at {self.host}:{self.port} does not accept explicit FTPS "
                    f"(AUTH TLS, reply {reply_code(exc)}). Enable TLS on the server or choose plain FTP.",
                    permanent=True,
                ) from None
            sock = ftps.sock
            assert isinstance(sock, ssl.SSLSocket)
            return ftps, sock.getpeercert(True) or b""
        except BaseException:
            ftps.close()
            raise

    def _login(self, ftp: ftplib.FTP) -> None:
        try:
            ftp.login(self.username, self.config.get("password") or "")
        except ftplib.error_perm as exc:
            code = reply_code(exc)
            if code == "530":
                raise self._error(
                    f"530 Login incorrect for user '{self.username}' on {self.host}:{self.port}: "
                    "check the username and password",
                    permanent=True,
                ) from None
            # The reply only picks our hint; its words are not shown.
            wants_tls = "TLS" in reply_line(exc).upper() or code in ("521", "534")
            hint = "; choose explicit FTPS" if not self.tls and wants_tls else ""
            raise self._error(
                f"{code} while logging in as '{self.username}' on "
                f"{self.host}:{self.port}{hint}",
                permanent=True,
            ) from None

    def _conn(self) -> ftplib.FTP:
        if self._ftp is None:
            self.open()
        assert self._ftp is not None
        return self._ftp

    # -- the interface -----------------------------------------------------------
    def check(self) -> str:
        ftp = self._conn()
        folder = self._abs("")
        self._make_folders(folder)
        probe = posixpath.join(folder, probe_name())
        with self._errors(f"writing a probe file in folder {folder}"):
            ftp.storbinary(f"STOR {probe}", io.BytesIO(b"probe\n"))
        with self._errors(f"deleting the probe file {probe}"):
            ftp.delete(probe)
        return f"Wrote and removed a probe file in {folder} on {self.describe()}"

    def upload(
        self,
        local: LocalFile,
        remote_path: str,
        progress: ProgressCallback,
        resume: ResumePoint | None = None,
    ) -> None:
        self._conn()  # the home folder that paths start from
        final = self._abs(remote_path)
        folder, name = posixpath.split(final)
        temp = posixpath.join(folder, f".{name}.part")
        point = resume if resume is not None else ResumePoint()
        self._make_folders(folder)
        self.lanes_used = 0
        if self._lanes_for(local, point):
            try:
                self.lanes_used = lanes.LANES
                lanes.send(self, local, temp, point, progress)
            except lanes.LanesUnavailable as exc:
                self.lanes_used = 0
                lanes.cool_off(self._lanes_key)
                logger.warning("%s: big files go over one FTP session for now: %s", self.describe(), exc)
            else:
                self.lanes_files += 1
                self._check_size_and_rename(local, temp, final)
                return
        if "lanes" in point.state:
            # Lanes wrote parts of it: its size says nothing of what is there.
            self._delete_quietly(temp)
            point.note(f"sending {name} again from byte 0 over one session")
        elif local.size >= lanes.MIN_SIZE and point.state != {"temp": temp}:
            # Lanes may have left it and their state be lost: only this path's
            # own state says that the file's size is how much of it is there.
            self._delete_quietly(temp)
        ftp = self._conn()
        offset = self._resume_offset(local, temp)
        if point.state != {"temp": temp}:
            point.save({"temp": temp})  # what discard() removes
        if offset:
            point.note(f"continuing {posixpath.basename(temp)} at byte {offset} of {local.size}")
        if offset < local.size or local.size == 0:
            with open(local.path, "rb") as fh, self._errors(f"uploading {temp}"):
                fh.seek(offset)
                ftp.storbinary(
                    f"STOR {temp}",
                    fh,
                    blocksize=BLOCK_SIZE,
                    callback=lambda block: progress(len(block)),
                    rest=offset or None,
                )
        self._check_size_and_rename(local, temp, final)

    def _check_size_and_rename(self, local: LocalFile, temp: str, final: str) -> None:
        size = self._size(temp)
        if size != local.size:
            self._delete_quietly(temp)
            raise self._error(
                f"{temp} has {size or 0} bytes after upload instead of {local.size}; "
                f"check free space on {self.host}"
            )
        self._rename(temp, final)

    def discard(self, remote_path: str, state: Any) -> None:
        final = self._abs(remote_path)
        folder, name = posixpath.split(final)
        # Only our own temporary name, whatever the state says.
        self._delete_quietly(posixpath.join(folder, f".{name}.part"))

    def verify(self, local: LocalFile, remote_path: str) -> bool:
        self._conn()
        return self._size(self._abs(remote_path)) == local.size

    # -- big files over lanes (lanes.py) ------------------------------------------------
    @property
    def _lanes_key(self) -> str:
        return f"{self.host}:{self.port}:{self.username}"

    def _lanes_for(self, local: LocalFile, point: ResumePoint) -> bool:
        """A big file, lanes did not just fail to start for this server, and
        no single-session upload of the file is half done."""
        if local.size < lanes.MIN_SIZE or lanes.LANES < 2 or lanes.cooling(self._lanes_key):
            return False
        return not point.state or "lanes" in point.state

    # -- helpers -------------------------------------------------------------------
    def _abs(self, remote_path: str) -> str:
        path = posixpath.normpath(posixpath.join(self._home, self.full_path(remote_path)))
        if "\r" in path or "\n" in path:
            raise TransferError(f"Path {remote_path!r} contains a line break", permanent=True)
        return path

    def _make_folders(self, folder: str) -> None:
        ftp = self._conn()
        if folder not in self._folders and self._is_folder(folder):
            self._folders.add(folder)
        missing = []
        while folder not in self._folders and folder not in ("/", ""):
            missing.append(folder)
            folder = posixpath.dirname(folder)
        for path in reversed(missing):
            with self._errors(f"creating folder {path}"):
                try:
                    ftp.mkd(path)
                except ftplib.error_perm:
                    if not self._is_folder(path):  # "exists" and "denied" share code 550
                        raise
            self._folders.add(path)

    def _is_folder(self, path: str) -> bool:
        ftp = self._conn()
        with self._errors(f"opening folder {path}"):
            try:
                ftp.cwd(path)
            except ftplib.error_perm:
                return False
            ftp.cwd(self._home)
        return True

    def _size(self, path: str) -> int | None:
        """Size in bytes, or None if there is no such file."""
        ftp = self._conn()
        with self._errors(f"reading the size of {path}"):
            try:
                return ftp.size(path)
            except ftplib.error_perm as exc:
                if not reply_line(exc).startswith(("500", "502", "504")):
                    return None
            try:
                reply = ftp.sendcmd(f"MLST {path}")
            except ftplib.error_perm as exc:
                if reply_line(exc).startswith(("500", "502", "504")):
                    raise self._error(
                        f"The server at {self.host}:{self.port} supports neither SIZE nor MLST, "
                        "so uploads cannot be verified",
                        permanent=True,
                    ) from None
                return None
        for line in reply.splitlines()[1:-1]:
            for fact in line.strip().split(" ", 1)[0].split(";"):
                key, _, value = fact.partition("=")
                if key.lower() == "size":
                    return int(value)
        return None

    def _resume_offset(self, local: LocalFile, temp: str) -> int:
        """How many bytes of a previous attempt's temporary file can be kept."""
        size = self._size(temp)
        if not size:
            return 0
        if size <= local.size and self._tail_matches(local, temp, size):
            return size
        self._delete_quietly(temp)
        return 0

    def _tail_matches(self, local: LocalFile, temp: str, size: int) -> bool:
        # A cheap sanity check that the partial file is a prefix of this file.
        ftp = self._conn()
        length = min(TAIL_CHECK, size)
        remote = bytearray()

        def collect(block: bytes) -> None:
            remote.extend(block[: length - len(remote)])

        try:
            with self._errors(f"reading back the end of {temp}"):
                ftp.retrbinary(f"RETR {temp}", collect, blocksize=length, rest=size - length)
        except TransferError as exc:
            if exc.permanent:  # REST or RETR refused: start the file over
                return False
            raise
        with open(local.path, "rb") as fh:
            fh.seek(size - length)
            return fh.read(length) == bytes(remote)

    def _rename(self, temp: str, final: str) -> None:
        ftp = self._conn()
        with self._errors(f"renaming {temp} to {final}"):
            try:
                ftp.rename(temp, final)
            except ftplib.error_perm:
                # Some servers (IIS, FileZilla) refuse to rename over an existing file.
                if self._size(final) is None:
                    raise
                ftp.delete(final)
                ftp.rename(temp, final)

    def _delete_quietly(self, path: str) -> None:
        with suppress(ftplib.Error, OSError):
            self._conn().delete(path)

    # -- errors ----------------------------------------------------------------------
    def _error(self, message: str, *, permanent: bool = False) -> TransferError:
        password = str(self.config.get("password") or "")
        if password:
            message = message.replace(password, "********")
        return TransferError(message, permanent=permanent)

    @contextmanager
    def _errors(self, doing: str, *, drop: bool = True) -> Iterator[None]:
        """Turn ftplib/socket/ssl exceptions into TransferErrors that say what
        was being done, where, and whether retrying can help. A lost
        connection is forgotten (``drop``) unless it was not the destination's
        own session (a lane's)."""
        where = f"{self.host}:{self.port}"
        try:
            yield
        except TransferError:
            raise
        except ftplib.error_perm as exc:  # 5xx: retrying will not help
            self._fail(f"{reply_code(exc)} while {doing} on {where}", permanent=True)
        except ftplib.error_temp as exc:  # 4xx, e.g. 421, 425, 426, 450, 451
            self._fail(f"{reply_code(exc)} while {doing} on {where}", lost=drop and reply_code(exc) == "421")
        except (ftplib.error_reply, ftplib.error_proto, EOFError):
            # Never the reply itself: a tenant could read another service's banner.
            self._fail(
                f"The server at {where} did not answer like an FTP server while {doing}",
                lost=drop,
            )
        except egress.OutboundRefused as exc:
            self._fail(exc.message, permanent=True, lost=drop)
        except socket.gaierror:
            self._fail(f"Cannot resolve host name {self.host!r}", permanent=True, lost=drop)
        except ConnectionRefusedError:
            self._fail(
                f"Connection refused by {where} while {doing}: is the FTP server up?", lost=drop
            )
        except TimeoutError:
            self._fail(f"Timed out while {doing} on {where}", lost=drop)
        except ssl.SSLError as exc:
            self._fail(f"TLS error while {doing} on {where}: {exc.reason or exc}", lost=drop)
        except OSError as exc:
            self._fail(
                f"Connection to {where} lost while {doing}: {exc.strerror or exc}", lost=drop
            )

    def _fail(self, message: str, *, permanent: bool = False, lost: bool = False) -> NoReturn:
        if lost:
            self._drop()
        raise self._error(message, permanent=permanent) from None

    def _drop(self) -> None:
        """Forget a broken connection without QUIT (which could wait for the
        timeout); the next call reconnects."""
        ftp, self._ftp = self._ftp, None
        if ftp is not None:
            ftp.close()


