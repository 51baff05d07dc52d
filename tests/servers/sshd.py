"""A real OpenSSH server (Debian's /usr/sbin/sshd) on a free loopback port.

It runs with its own sshd_config, host key and authorized_keys in a temp dir.
Two local test accounts are created once (idempotently) because sshd only
logs in real users and root would bypass the permission tests:

- ``SHELL_USER`` may run commands (mkdir, mv, sha256sum ...);
- ``NOSHELL_USER`` gets a forced command that allows only SFTP and scp, like
  the restricted accounts hosting companies hand out. ``server.set_noshell_sftp``
  switches SFTP off for it, leaving scp alone.

The server can be killed mid-transfer (``kill_connections``) and restarted on
the same port (``restart``).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import psutil
import pytest

from tests.servers import free_port, unavailable

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
SHELL_USER = "portal-sshtest"
NOSHELL_USER = "portal-sshscp"
HOMES = Path("/var/lib/portal-sshtest")

NOSHELL_WRAPPER = """#!/bin/sh
# Forced command: sftp and scp only, no shell.
case "$SSH_ORIGINAL_COMMAND" in
  */sftp-server)
    [ -e {workdir}/noshell-sftp-off ] && {{ echo "sftp disabled" >&2; exit 1; }}
    exec {sftp_server} ;;
  "scp -t "*|"scp -r -t "*|"scp -f "*)
    eval "exec $SSH_ORIGINAL_COMMAND" ;;
  *)
    echo "This account may only use sftp and scp." >&2; exit 1 ;;
esac
"""


@dataclass
class SSHServer:
    workdir: Path
    port: int = 0
    host: str = "127.0.0.1"
    passwords: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def host_key(self) -> Path:
        return self.workdir / "ssh_host_ed25519_key"

    @property
    def client_key(self) -> Path:
        return self.workdir / "client_ed25519"

    @cached_property
    def fingerprint(self) -> str:
        """Host key fingerprint exactly as ``ssh-keygen -lf`` prints it."""
        out = subprocess.run(
            ["ssh-keygen", "-lf", str(self.host_key)], check=True, capture_output=True, text=True
        ).stdout
        return out.split()[1]

    def upload_dir(self, user: str = SHELL_USER) -> Path:
        return self.workdir / f"uploads-{user}"

    @property
    def readonly_dir(self) -> Path:
        return self.workdir / "readonly"

    def config(self, user: str = SHELL_USER, **extra) -> dict:
        """Destination config for ``user`` with the host key pinned and password login."""
        return {
            "host": self.host,
            "port": self.port,
            "username": user,
            "password": self.passwords[user],
            "root": str(self.upload_dir(user)),
            "pinned_fingerprint": self.fingerprint,
            **extra,
        }

    def authorize(self, user: str, public_line: str) -> None:
        with open(self.workdir / "authorized_keys" / user, "a") as fh:
            fh.write(public_line.strip() + "\n")

    def set_noshell_sftp(self, enabled: bool) -> None:
        flag = self.workdir / "noshell-sftp-off"
        if enabled:
            flag.unlink(missing_ok=True)
        else:
            flag.touch()

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        if not self.port:
            self.port = free_port()
        config = self.workdir / "sshd_config"
        config.write_text(_sshd_config(self.workdir, self.port))
        log = open(self.workdir / "sshd.log", "ab")
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.workdir / 'sshd.log').read_text()[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    if sock.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening within 10 s")

    def kill_connections(self) -> None:
        """Kill every per-connection sshd process (and its sftp/scp children)."""
        if self.proc is None:
            return
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            try:
                child.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass

    def stop(self) -> None:
        if self.proc is None:
            return
        self.kill_connections()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def _sshd_config(workdir: Path, port: int) -> str:
    return f"""\
ListenAddress 127.0.0.1
Port {port}
HostKey {workdir}/ssh_host_ed25519_key
PidFile {workdir}/sshd.pid
AuthorizedKeysFile {workdir}/authorized_keys/%u
StrictModes no
UsePAM no
PermitRootLogin no
AllowUsers {SHELL_USER} {NOSHELL_USER}
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
MaxAuthTries 10
MaxStartups 50
LogLevel VERBOSE
Subsystem sftp {SFTP_SERVER}

Match User {NOSHELL_USER}
    ForceCommand {workdir}/noshell.sh
"""


def _test_password(name: str) -> str:
    """One random password per account and machine, kept root-only on disk so
    test sessions running at once agree on it."""
    HOMES.mkdir(mode=0o755, parents=True, exist_ok=True)
    path = HOMES / f".{name}.password"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(16))
    return path.read_text().strip()


def _ensure_user(name: str, password: str) -> None:
    home = HOMES / name
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/sh", name],
            check=True,
        )
    home.mkdir(parents=True, exist_ok=True)
    entry = pwd.getpwnam(name)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)


def _prepare(workdir: Path) -> SSHServer:
    server = SSHServer(workdir)
    workdir.chmod(0o755)  # the test users must reach authorized_keys and their folders
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(server.host_key)], check=True
    )
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "portal-test", "-f", str(server.client_key)],
        check=True,
    )
    (workdir / "authorized_keys").mkdir()
    for user in (SHELL_USER, NOSHELL_USER):
        server.passwords[user] = _test_password(user)
        _ensure_user(user, server.passwords[user])
        entry = pwd.getpwnam(user)
        upload = server.upload_dir(user)
        upload.mkdir()
        os.chown(upload, entry.pw_uid, entry.pw_gid)
        server.authorize(user, (workdir / "client_ed25519.pub").read_text())
    server.readonly_dir.mkdir(mode=0o555)
    server.readonly_dir.chmod(0o555)
    wrapper = workdir / "noshell.sh"
    wrapper.write_text(NOSHELL_WRAPPER.format(workdir=workdir, sftp_server=SFTP_SERVER))
    wrapper.chmod(0o755)
    return server


@pytest.fixture(scope="session")
def sshd_server():
    if not os.path.exists(SSHD) or not shutil.which("ssh-keygen"):
        missing = "OpenSSH server not installed (apt-get install openssh-server)"
        unavailable(missing)
    if os.geteuid() != 0:
        unavailable("the sshd fixture creates local test users and must run as root")
    workdir = Path(tempfile.mkdtemp(prefix="portal-sshd-"))
    server = _prepare(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def sshd(sshd_server: SSHServer):
    """The session's server, guaranteed running and with SFTP on for every test."""
    if sshd_server.proc is None or sshd_server.proc.poll() is not None:
        sshd_server.start()
    sshd_server.set_noshell_sftp(True)
    return sshd_server
