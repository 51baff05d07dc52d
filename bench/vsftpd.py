"""A real vsftpd (Debian's /usr/sbin/vsftpd) for bench/delivery.py's FTP and FTPS.

vsftpd runs one process per session, in C, and takes a REST past the end of
a file as our FTP lanes need (delivery/destinations/ftp/lanes.py): a fairer
reference for both clients than pyftpdlib, whose Python receive loop bounded
them both. The test suite keeps pyftpdlib (tests/servers/ftp.py): it can be
killed mid-transfer and made to refuse things, which the tests need.

It runs as root in the foreground with its own config in a temp dir, on a free
loopback port, and serves one local account made for the run (vsftpd logs in
only real users, through PAM): ``USER`` with a random password and its home in
the temp dir. ``stop()`` kills it and its sessions and removes the account.
Imported by bench/delivery.py (which puts the repository on ``sys.path``).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.servers import free_port, wait_for_port
from tests.servers.ftp import _free_port_range, destination_config, make_self_signed_certificate

VSFTPD = "/usr/sbin/vsftpd"
USER = "portal-ftpbench"
# Debian's /etc/pam.d/vsftpd: the account's shell must be in /etc/shells and
# the account not in /etc/ftpusers.
SHELL = "/bin/sh"


@dataclass
class Vsftpd:
    workdir: Path
    home: Path
    port: int
    password: str
    tls: bool
    fingerprint: str | None
    proc: subprocess.Popen
    host: str = "127.0.0.1"
    username: str = USER

    def config(self, **overrides: object) -> dict[str, object]:
        """Our FTP destination's config for this server (its certificate pinned)."""
        pin = {"pinned_fingerprint": self.fingerprint} if self.fingerprint else {}
        return destination_config(self, **{**pin, **overrides})

    def stop(self) -> None:
        # Its own process group (start_new_session): the session processes too.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        subprocess.run(["userdel", USER], capture_output=True)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _config(workdir: Path, port: int, tls: bool, cert: Path | None, key: Path | None) -> str:
    passive = _free_port_range()
    lines = [
        "listen=YES",
        "listen_ipv6=NO",
        "listen_address=127.0.0.1",
        f"listen_port={port}",
        "background=NO",
        "anonymous_enable=NO",
        "local_enable=YES",
        "write_enable=YES",
        "local_umask=022",
        # By default vsftpd holds a write lock on a file for the whole of its
        # upload, so a lane's STOR waits for the other's to end (our lanes then
        # give up after 5 s, lanes.LOCK_WAIT, and send the file over one session).
        "lock_upload_files=NO",
        "pasv_enable=YES",
        "pasv_address=127.0.0.1",
        f"pasv_min_port={passive.start}",
        f"pasv_max_port={passive.stop - 1}",
        "port_enable=NO",
        # Its syscall filter fails in some containers ("500 OOPS: child died").
        "seccomp_sandbox=NO",
        "pam_service_name=vsftpd",
        f"secure_chroot_dir={workdir / 'empty'}",
        "use_localtime=NO",
        # Its own log, no transfer log (a line per file is nothing, but neither is it needed).
        f"vsftpd_log_file={workdir / 'vsftpd.log'}",
        "xferlog_enable=NO",
        "dual_log_enable=NO",
        "syslog_enable=NO",
    ]
    if tls:
        lines += [
            "ssl_enable=YES",
            f"rsa_cert_file={cert}",
            f"rsa_private_key_file={key}",
            "force_local_logins_ssl=YES",
            "force_local_data_ssl=YES",
            # Python's ftplib and rclone do not resume the control channel's TLS
            # session on the data connections, which vsftpd requires by default.
            "require_ssl_reuse=NO",
            "ssl_request_cert=NO",
            "ssl_ciphers=HIGH",
        ]
    return "\n".join(lines) + "\n"


def _make_user(home: Path) -> str:
    """The run's local account, home ``home``; returns its new password."""
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--no-create-home", "--home-dir", str(home), "--shell", SHELL, USER], check=True
        )
    else:  # left over from a run that did not stop
        subprocess.run(["usermod", "--home", str(home), "--shell", SHELL, USER], check=True)
    password = secrets.token_urlsafe(16)
    subprocess.run(["chpasswd"], input=f"{USER}:{password}\n", text=True, check=True)
    entry = pwd.getpwnam(USER)
    home.mkdir()
    os.chown(home, entry.pw_uid, entry.pw_gid)
    return password


def start_vsftpd(tls: bool) -> Vsftpd:
    """Needs root and /usr/sbin/vsftpd (bench/delivery.py's ``missing_tools``)."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-vsftpd-"))
    workdir.chmod(0o755)  # the account must reach its home inside
    (workdir / "empty").mkdir(mode=0o755)
    home = workdir / "home"
    password = _make_user(home)
    cert = key = fingerprint = None
    if tls:
        cert, key, fingerprint = make_self_signed_certificate(workdir)
    port = free_port()
    conf = workdir / "vsftpd.conf"
    conf.write_text(_config(workdir, port, tls, cert, key))
    with open(workdir / "stderr.log", "ab") as log:
        proc = subprocess.Popen([VSFTPD, str(conf)], stdout=log, stderr=log, start_new_session=True)
    server = Vsftpd(workdir, home, port, password, tls, fingerprint, proc)
    try:
        wait_for_port(port, proc, what="vsftpd", timeout=10)
    except RuntimeError:
        output = (workdir / "stderr.log").read_text(errors="replace")[-2000:]
        server.stop()
        raise RuntimeError(f"vsftpd did not start: {output}") from None
    return server
