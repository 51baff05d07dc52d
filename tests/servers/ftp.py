"""Real FTP and FTPS servers (pyftpdlib) for the tests.

Each server runs in a subprocess so a test can kill it mid-transfer and start
it again on the same port. The user ``rec`` owns a home folder in a temp dir;
``readonly/`` inside it is list/read only. The FTPS variant requires TLS on
the control and data channels with a self-signed certificate made here.

Options for the FTP lanes (delivery/destinations/ftp/lanes.py): one process
per session (``multiprocess``, pyftpdlib's MultiprocessFTPServer, as vsftpd
and ProFTPD run), REST past the end of a file as vsftpd allows it
(``rest_past_end``; pyftpdlib itself answers 554), a write lock on a file for
the whole of its upload as vsftpd's default ``lock_upload_files=YES`` takes
(``lock_uploads``, with ``multiprocess``: a second session's STOR of that file
waits for the first to end), and a limit of sessions (``max_sessions``: 421 to
the one over it). ``logins()`` counts the sessions that logged in and
``stored()`` the uploads the server logged.

Run as a script (``python tests/servers/ftp.py --home DIR ...``) this module
is the server itself.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import fcntl
import hashlib
import ipaddress
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

FTP_USER = "rec"
FTP_PASSWORD = "s3cret-Ftp-pw!"
READONLY = "readonly"
START_TIMEOUT = 15.0


def make_self_signed_certificate(folder: Path, name: str = "server") -> tuple[Path, Path, str]:
    """Write a self-signed certificate for 127.0.0.1 and its key; return
    (certfile, keyfile, ``SHA256:<base64>`` fingerprint of the DER)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = folder / f"{name}.crt", folder / f"{name}.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    digest = base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")
    return certfile, keyfile, f"SHA256:{digest}"


def _free_port_range(size: int = 30) -> range:
    """A run of free loopback ports below the kernel's ephemeral range, for
    passive data connections (pyftpdlib falls back to any port if taken)."""
    for _ in range(200):
        start = random.randrange(20000, 32000 - size)
        try:
            for port in (start, start + size // 2, start + size - 1):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return range(start, start + size)
    raise RuntimeError("no free passive port range on 127.0.0.1")


@dataclass
class FTPServer:
    """Handle on one pyftpdlib subprocess."""

    home: Path
    logdir: Path
    tls: bool = False
    certfile: Path | None = None
    keyfile: Path | None = None
    fingerprint: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    username: str = FTP_USER
    password: str = FTP_PASSWORD
    passive_ports: range = field(default_factory=_free_port_range)
    # An address the PASV replies name instead of the server's own (a lying server).
    masquerade: str = ""
    multiprocess: bool = False
    rest_past_end: bool = False
    lock_uploads: bool = False
    max_sessions: int = 0
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def config(self, **overrides: Any) -> dict[str, Any]:
        return destination_config(self, **overrides)

    def start(self) -> None:
        """Start the server; on a restart it binds the same port again."""
        args = [
            sys.executable, __file__,
            "--home", str(self.home),
            "--port", str(self.port),
            "--passive", f"{self.passive_ports.start}-{self.passive_ports.stop - 1}",
        ]  # fmt: skip
        if self.tls:
            args += ["--cert", str(self.certfile), "--key", str(self.keyfile)]
        if self.masquerade:
            args += ["--masquerade", self.masquerade]
        if self.multiprocess:
            args.append("--multiprocess")
        if self.rest_past_end:
            args.append("--rest-past-end")
        if self.lock_uploads:
            # One process per session: a process never waits for its own lock.
            assert self.multiprocess, "lock_uploads needs multiprocess"
            args.append("--lock-uploads")
        if self.max_sessions:
            args += ["--max-sessions", str(self.max_sessions)]
        ready = self.logdir / "ready.txt"
        ready.unlink(missing_ok=True)
        with open(self.logdir / "server.log", "ab") as log:
            # A group of its own: kill() takes the session processes too.
            self.proc = subprocess.Popen(
                args + ["--ready-file", str(ready)], stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if ready.exists() and (text := ready.read_text().strip()):
                self.port = int(text)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.kill()
        log_text = (self.logdir / "server.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"FTP server did not start:\n{log_text}")

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients, buffered writes are lost."""
        if self.proc:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def read(self, path: str) -> Path:
        return self.home / path

    def logins(self) -> int:
        """How many sessions have logged in since the log began."""
        return (self.logdir / "server.log").read_text(errors="replace").count(" logged in.")

    def stored(self, path: str) -> list[int]:
        """The byte counts of the uploads into ``path`` (under the home folder)
        that the server logged as ended, in the order they ended."""
        name = str(self.read(path))
        log = (self.logdir / "server.log").read_text(errors="replace")
        return [int(m) for m in re.findall(rf"STOR {re.escape(name)} completed=[01] bytes=(\d+) ", log)]


def destination_config(server: Any, **overrides: Any) -> dict[str, Any]:
    """Our FTP destination's config for a test server (this one, or the
    bench's vsftpd): passive, explicit TLS where the server has it."""
    config = {
        "host": server.host,
        "port": server.port,
        "username": server.username,
        "password": server.password,
        "passive": True,
        "tls": "explicit" if server.tls else "none",
        "root": "",
    }
    config.update(overrides)
    return config


def _start_server(tmp: Path, *, tls: bool, **options: Any) -> FTPServer:
    home, logdir = tmp / "home", tmp / "log"
    (home / READONLY).mkdir(parents=True)
    logdir.mkdir()
    server = FTPServer(home=home, logdir=logdir, tls=tls, **options)
    if tls:
        server.certfile, server.keyfile, server.fingerprint = make_self_signed_certificate(tmp)
    server.start()
    return server


@pytest.fixture(scope="session")
def ftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FTPServer]:
    server = _start_server(tmp_path_factory.mktemp("ftp"), tls=False)
    yield server
    server.kill()


@pytest.fixture(scope="session")
def ftps_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FTPServer]:
    server = _start_server(tmp_path_factory.mktemp("ftps"), tls=True)
    yield server
    server.kill()


@pytest.fixture
def lying_pasv_ftp_server(tmp_path: Path) -> Iterator[FTPServer]:
    """A server whose PASV replies name 127.0.0.3 instead of its own address."""
    server = _start_server(tmp_path, tls=False, masquerade="127.0.0.3")
    yield server
    server.kill()


class RestPastTheEnd:
    """vsftpd lets a REST past the end of a file place the next STOR's bytes
    there (the gap a hole until written: "allows seek past end of file",
    postlogin.c); pyftpdlib answers 554. The file is lengthened to the
    position first, so that pyftpdlib accepts it."""

    _restart_position: int

    def ftp_STOR(self, file: str, mode: str = "w") -> Any:
        position = self._restart_position
        if position and "a" not in mode:
            with open(file, "ab") as fh:  # made if missing, as vsftpd's O_CREAT
                if fh.tell() < position:
                    fh.truncate(position)
        return super().ftp_STOR(file, mode)  # type: ignore[misc]


class LockUploads:
    """vsftpd's ``lock_upload_files=YES`` (its default): the file a STOR
    opens is locked for writing (fcntl, blocking) before the 1xx reply and
    until the upload ends (pyftpdlib closes the file then), so a second
    session's STOR of it gets no reply until the first ends."""

    fs: Any

    def ftp_STOR(self, file: str, mode: str = "w") -> Any:
        opener = self.fs.open

        def open_locked(path: str, how: str) -> Any:
            fh = opener(path, how)
            fcntl.lockf(fh, fcntl.LOCK_EX)
            return fh

        self.fs.open = open_locked
        try:
            return super().ftp_STOR(file, mode)  # type: ignore[misc]
        finally:
            del self.fs.open


def _serve(argv: list[str]) -> None:
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer as PyFTPServer
    from pyftpdlib.servers import MultiprocessFTPServer

    parser = argparse.ArgumentParser()
    parser.add_argument("--home", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--passive", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--masquerade", default="")
    parser.add_argument("--multiprocess", action="store_true")
    parser.add_argument("--rest-past-end", action="store_true")
    parser.add_argument("--lock-uploads", action="store_true")
    parser.add_argument("--max-sessions", type=int, default=0)
    parser.add_argument("--ready-file", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    authorizer = DummyAuthorizer()
    authorizer.add_user(FTP_USER, FTP_PASSWORD, args.home, perm="elradfmwMT")
    authorizer.override_perm(FTP_USER, str(Path(args.home) / READONLY), "elr", recursive=True)

    base: type = FTPHandler
    if args.cert:
        from pyftpdlib.handlers import TLS_FTPHandler

        base = TLS_FTPHandler
    first, last = (int(p) for p in args.passive.split("-"))
    attrs: dict[str, Any] = {
        "authorizer": authorizer,
        "passive_ports": range(first, last + 1),
        "auth_failed_timeout": 0,  # the default 3 s delay only slows the tests
        "banner": "test FTP server ready.",
    }
    if args.masquerade:
        attrs["masquerade_address"] = args.masquerade
    if args.cert:
        attrs.update(
            certfile=args.cert,
            keyfile=args.key,
            tls_control_required=True,
            tls_data_required=True,
        )
    bases = (RestPastTheEnd, base) if args.rest_past_end else (base,)
    if args.lock_uploads:
        bases = (LockUploads, *bases)
    handler = type("TestHandler", bases, attrs)
    server_class = MultiprocessFTPServer if args.multiprocess else PyFTPServer
    server = server_class(("127.0.0.1", args.port), handler)
    server.max_cons_per_ip = args.max_sessions
    ready = Path(args.ready_file)
    ready.with_suffix(".tmp").write_text(str(server.address[1]))
    ready.with_suffix(".tmp").replace(ready)  # the parent polls: never show half a number
    server.serve_forever()


if __name__ == "__main__":
    _serve(sys.argv[1:])
