"""The FTP connection classes: control and data connections through the
egress guard, FTPS data connections bound to the control channel's TLS
session and certificate, and how certificates and replies are read."""

from __future__ import annotations

import base64
import ftplib
import functools
import hashlib
import socket
import ssl
from typing import Any

from portal import egress


def certificate_fingerprint(der: bytes) -> str:
    """``SHA256:<base64 without padding>`` of a DER certificate, as OpenSSH prints keys."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


def same_fingerprint(a: str, b: str) -> bool:
    return a.strip().rstrip("=") == b.strip().rstrip("=")


class GuardedFTP(ftplib.FTP):
    """ftplib.FTP whose control connection is opened by the egress guard and
    whose passive data connections go to that same vetted address, whatever
    address a PASV reply names."""

    def connect(self, host: str = "", port: int = 0, timeout: float = -999, source_address: Any = None) -> str:
        if host:
            self.host = host
        if port > 0:
            self.port = port
        if timeout != -999:
            self.timeout = timeout
        if source_address is not None:
            self.source_address = source_address
        self.sock = egress.connect(self.host, self.port, self.timeout, source_address=self.source_address)
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome

    def makepasv(self) -> tuple[str, int]:
        _untrusted_host, port = super().makepasv()
        assert self.sock is not None  # connected: PASV was just answered on it
        return self.sock.getpeername()[0], port


class GuardedFTPS(GuardedFTP, ftplib.FTP_TLS):
    """FTP_TLS whose data connections reuse the control channel's TLS session
    (vsftpd and FileZilla Server require it) and, when the certificate was
    accepted by pin, must present that same certificate."""

    pinned_der: bytes | None = None

    def ntransfercmd(self, cmd: str, rest: Any = None) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]
            session = getattr(self.sock, "session", None)
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
            if self.pinned_der is not None and conn.getpeercert(True) != self.pinned_der:
                conn.close()
                raise ssl.SSLError("the data connection presented a different certificate")
        return conn, size


@functools.cache
def verified_context() -> ssl.SSLContext:
    """The system's CA store and hostname checks. One per process: making one
    loads the CA bundle (~20 ms, twice per FTPS delivery to a pinned server,
    bench/README.md); a context is safe to share between threads."""
    return ssl.create_default_context()


@functools.cache
def unverified_context() -> ssl.SSLContext:
    # Only used to read the certificate; it is then checked against the pin.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context




def reply_code(exc: BaseException) -> str:
    """The three-digit reply code of an ftplib error: the server's words after
    it are not shown to anyone."""
    code = reply_line(exc)[:3]
    return code if code.isdigit() else "???"


def reply_line(exc: BaseException) -> str:
    return str(exc.args[0] if exc.args else exc).strip().splitlines()[0].rstrip(".")
