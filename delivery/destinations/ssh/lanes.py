"""Big files to shell accounts through OpenSSH's own client, over several
connections at once ("lanes").

One SSH connection is served by one sshd process on the other side, and our
Python client (paramiko) spends a core on its own per-packet work; on the
2-CPU machine of bench/README.md neither side can go past ~rclone's speed on
one connection. OpenSSH's C client over two connections can (sshd then works
on both CPUs): "OpenSSH lanes: how they were chosen" in bench/README.md.

How a file goes:

- The destination's paramiko connection stays the control connection: login,
  pinning, the shell probe, folders, the temporary file, the rename and the
  verify happen there as before.
- Each lane is one ``ssh`` process running a small POSIX sh loop on the
  server (``LANE_SCRIPT``): it reads ``<offset> <length> <path>`` and has GNU
  dd write exactly that many of the following bytes there. The file is cut
  in SEGMENTs that the lanes take in turn, fed through a pipe (``os.splice``:
  the bytes never enter Python); a lane that runs faster takes more, so the
  two end together. A server whose dd is not GNU's gets one range per lane
  and a plain dd until the lane's input ends.
- A lane stays logged in after its file (it waits for the next line): the
  set goes back to the connection pool with the control connection and the
  next big file to that server starts without logging in again (``ping``
  checks a kept set first). Logins leave out the Streamlined NTRU Prime key
  exchange, a tenth of a second of CPU each (``KEX_ALGORITHMS``).
- ``ssh`` gets nothing from the worker's environment or files: ``-F
  /dev/null``, a known_hosts holding only the host key the paramiko connection
  already checked against the pin, the peer address that connection was
  vetted for by the egress guard (a literal IP: no second DNS answer), the
  private key through an in-memory file (``memfd``, never on disk) or the
  password through an askpass script that prints it from the environment of
  that one ssh process. Its stderr (which can quote the server) is dropped.
- Every lane must log in and say ``ready`` before any byte is sent; if one
  cannot (an old or missing ``ssh``, a server without our ciphers, a noexec
  temp folder), nothing was written and the upload goes over the paramiko
  connection instead, and lanes are not tried again for that server for a
  while (``COOL_OFF``).

Resume: the resume state names the temp file and the ranges (segments) of
the whole file. Each is written in order by one dd, so after a cut the next
run asks the server for the SHA-256 of every ``SCAN_BLOCK`` (``dd | openssl
dgst``) and continues each range at its first block that differs from ours.
What is sent again is at most what was in flight (an SSH window, a pipe,
dd's block) plus a scan block per lane: under one 16 MiB part for two lanes.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import queue
import select
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..base import CoolOff, LocalFile, ProgressCallback, TransferError

if TYPE_CHECKING:
    import paramiko

MiB = 1024 * 1024
# Files this big or bigger go over lanes (below it, a second login costs more
# than it gains).
MIN_SIZE = 64 * MiB
LANES = 2
# dd's seek and skip count blocks of BLOCK bytes; lanes start and end (but
# the last) on whole SCAN_BLOCKs, so a scan block never spans two lanes.
BLOCK = MiB
SCAN_BLOCK = 2 * MiB
# What a lane takes at a time (a whole number of SCAN_BLOCKs). Smaller evens
# out the lanes' ends better (two lanes' speeds differ by up to a half here)
# but costs a dd start on the server each.
SEGMENT = 16 * MiB
# The segments' dd gathers this much from the pipe before each write: 1 MiB
# (BLOCK) no longer fits the CPU's cache between the read and the write, and
# took twice as long (512 MiB through a pipe here: 0.92-1.04 s against
# 0.36-0.49 s with 64-256 KiB).
WRITE_BLOCK = 128 * 1024
FEED = 4 * MiB  # bytes spliced into a lane's pipe per call
PIPE_SIZE = MiB
READY = "portal-lane-ready"
READY_TIMEOUT = 30
REUSE_TIMEOUT = 5  # a kept lane must answer a ping this fast
CONFIRM_TIMEOUT = 600  # for the last segment's dd to finish writing
READY_WINDOW = 4096
CONTROL_KEEPALIVE = 15  # seconds between keepalives on the idle control connection
# A server where lanes could not start is not asked again for this long.
COOL_OFF = 600.0
HOST_ALIAS = "portal-destination"
CIPHERS = (
    "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes256-ctr"
)
# OpenSSH's defaults but the Streamlined NTRU Prime hybrids: their key pair
# takes the client ~0.1 s of CPU per login (85 + 34 ms measured with OpenSSH
# 9.2 here, a third of a lane's login), where ML-KEM's hybrid (the default from
# OpenSSH 9.9) and X25519 take well under a millisecond. The control
# connection (paramiko) negotiates X25519 anyway. A "-" list removes names
# from the defaults and is not checked against what this ssh knows.
KEX_ALGORITHMS = "-sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com"
# Host key algorithms OpenSSH accepts for each key type paramiko reports.
HOST_KEY_ALGORITHMS = {
    "ssh-ed25519": "ssh-ed25519",
    "ecdsa-sha2-nistp256": "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384": "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521": "ecdsa-sha2-nistp521",
    "ssh-rsa": "rsa-sha2-512,rsa-sha2-256",
}
SEGMENTS, WHOLE = "segments", "whole"
# What each lane runs on the server, in POSIX sh whatever the login shell.
# GNU dd (coreutils 8.16+) copies exactly <length> bytes of the pipe to
# <offset> and leaves the rest for the next line; nocreat: a lane still busy
# after its upload failed and the temporary file was removed must not make
# it again. Without those flags, one dd per lane until its input ends. The
# path comes in a line, not in the command: it is only ever "$path". dd's
# messages are dropped (ssh's stderr is dropped too).
LANE_SCRIPT = (
    "if dd if=/dev/null of=/dev/null iflag=fullblock,count_bytes oflag=seek_bytes "
    "conv=notrunc,nocreat 2>/dev/null; then "
    f"echo {READY} {SEGMENTS}; "
    "while IFS=' ' read -r at n path; do "
    'case $at in ping) echo "pong $n ."; continue;; esac; '
    f'dd of="$path" bs={WRITE_BLOCK} iflag=fullblock,count_bytes count="$n" oflag=seek_bytes seek="$at" '
    "conv=notrunc,nocreat 2>/dev/null || exit 1; "
    "done; "
    f"else echo {READY} {WHOLE}; "
    "if dd if=/dev/null of=/dev/null conv=nocreat 2>/dev/null; then c=notrunc,nocreat; else c=notrunc; fi; "
    "IFS=' ' read -r at n path || exit 0; "
    f'exec dd of="$path" bs={BLOCK} seek=$((at / {BLOCK})) conv=$c 2>/dev/null; '
    "fi"
)
ASKPASS = '#!/bin/sh\nprintf "%s\\n" "$PORTAL_SSH_SECRET"\n'

_cooling = CoolOff()

Range = tuple[int, int]  # [start, end) of the file


class LanesUnavailable(Exception):
    """Lanes could not start; nothing was sent over them. The message is ours."""


def ssh_client() -> str | None:
    return shutil.which("ssh")


def cooling(key: str) -> bool:
    return _cooling.active(key)


def cool_off(key: str) -> None:
    _cooling.start(key, COOL_OFF)


def split(start: int, end: int, lanes: int = LANES) -> list[Range]:
    """[start, end) cut into at most ``lanes`` ranges on whole SCAN_BLOCKs."""
    length = end - start
    per = -(-length // lanes)
    per += -per % SCAN_BLOCK
    cuts = [start]
    while cuts[-1] + per < end:
        cuts.append(cuts[-1] + per)
    return [(a, b) for a, b in zip(cuts, cuts[1:] + [end], strict=True) if b > a]


def segments(start: int, end: int) -> list[Range]:
    """[start, end) cut into SEGMENTs (the last one shorter)."""
    return [(at, min(at + SEGMENT, end)) for at in range(start, end, SEGMENT)]


def valid_ranges(value: Any, size: int) -> list[Range] | None:
    """The lanes of a saved resume state, or None if they are not ours: they
    must be what ``split`` makes, whole ranges that together cover the file
    (a scan of them then covers every byte, whatever became of the file)."""
    if not isinstance(value, list) or not value:
        return None
    ranges: list[Range] = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 2 and all(type(n) is int for n in item)):
            return None
        start, end = item
        if start != (ranges[-1][1] if ranges else 0) or end <= start or start % SCAN_BLOCK:
            return None
        ranges.append((start, end))
    return ranges if ranges[-1][1] == size else None


def private_folder(*, runs_helper: bool) -> str:
    """A new private folder (0700) for the lanes' known_hosts and, with a
    password, the askpass script ssh runs. The system's temp folder first; where
    it is mounted noexec (a common hardening) ssh could not run the script, so
    the worker's DATA_DIR/tmp/lanes is tried next (made only then)."""
    from recordings.store import scratch_dir

    places: list[Callable[[], Path]] = [lambda: Path(tempfile.gettempdir())]
    if runs_helper:
        places.append(lambda: scratch_dir("lanes"))
    for place in places:
        try:
            base = place()
            noexec = bool(os.statvfs(base).f_flag & os.ST_NOEXEC)
        except OSError:
            continue
        if runs_helper and noexec:
            continue
        return tempfile.mkdtemp(prefix="portal-lanes-", dir=base)
    raise LanesUnavailable(
        "OpenSSH's client needs a folder where its password helper may run, and both the "
        "temp folder and DATA_DIR/tmp are mounted noexec (or cannot be written)"
    )


def fits_a_line(path: str) -> bool:
    """Whether ``path`` goes whole through a lane's header line (``read``
    ends it at a line break and trims spaces at its ends)."""
    return "\n" not in path and "\0" not in path and path == path.strip()


def remote_path(path: str) -> str:
    """``path`` quoted for a remote POSIX shell, never read as an option."""
    return shlex.quote(path if path.startswith("/") else f"./{path}")


def scan_command(path: str, ranges: Sequence[Range]) -> str:
    """A POSIX sh command printing one SHA-256 per SCAN_BLOCK of each range,
    in order (empty blocks past the file's end hash as the empty string).
    The ranges follow each other and start on whole SCAN_BLOCKs (as
    ``valid_ranges`` makes sure), so one pass over them all does."""
    safe = remote_path(path)
    blocks = SCAN_BLOCK // BLOCK
    first, last = ranges[0][0] // BLOCK, -(-ranges[-1][1] // BLOCK)
    script = (
        "if command -v openssl >/dev/null 2>&1; then h='openssl dgst -sha256 -r'; else h=sha256sum; fi; "
        f"i={first}; while [ $i -lt {last} ]; do "
        f"dd if={safe} bs={BLOCK} skip=$i count={blocks} 2>/dev/null | $h; i=$((i+{blocks})); done"
    )
    return "sh -c " + shlex.quote(script)


def written_prefixes(local: LocalFile, ranges: Sequence[Range], digests: list[str]) -> list[int]:
    """For each range, where its first SCAN_BLOCK that differs from ours starts
    (its end if none does). ``digests`` is the server's answer to scan_command."""
    positions = []
    index = 0
    with open(local.path, "rb") as fh:
        for start, end in ranges:
            position, matching, offset = start, True, start
            while offset < end:
                length = min(SCAN_BLOCK, end - offset)
                fh.seek(offset)
                ours = hashlib.sha256(fh.read(length)).hexdigest()
                theirs = digests[index] if index < len(digests) else ""
                index += 1
                if matching and theirs == ours:
                    position = offset + length
                else:
                    matching = False
                offset += SCAN_BLOCK
            positions.append(max(start, min(position, end)))
    return positions


class Lanes:
    """The ssh processes of one or more uploads to one server, and what they
    need on disk while they run (a private folder: known_hosts, the askpass
    script).

    Each lane logs in once and then waits for work: a line ``<offset>
    <length> <path>`` followed by exactly ``length`` bytes, which GNU dd
    (``iflag=fullblock,count_bytes oflag=seek_bytes``) writes at ``offset``;
    ``ping <n>`` is answered ``pong <n>`` once everything before it is
    written. The file goes in SEGMENTs that each lane takes in turn, so a
    lane that runs faster takes more of them and both end together. Such
    lanes stay logged in after an upload, to go back to the connection pool
    with the control connection (``reusable``).

    A server without those dd flags (not GNU coreutils) gets one range per
    lane instead, written by a plain ``dd`` until the lane's input ends: the
    lane ends with its range (mode ``WHOLE``)."""

    def __init__(self, transport: paramiko.Transport, config: dict[str, Any], where: str):
        self.transport, self.config, self.where = transport, config, where
        self.folder = ""
        self.key_fd: int | None = None
        self.procs: list[subprocess.Popen[bytes]] = []
        self.mode = ""  # SEGMENTS or WHOLE once every lane is ready
        self._pings = 0

    # -- set-up -------------------------------------------------------------------
    def __enter__(self) -> Lanes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the lanes and remove what they needed on disk."""
        self.stop()
        if self.key_fd is not None:
            os.close(self.key_fd)
            self.key_fd = None
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = ""

    @property
    def reusable(self) -> bool:
        """Logged in, waiting for work, and able to take another file."""
        return self.mode == SEGMENTS and bool(self.procs) and all(p.poll() is None for p in self.procs)

    def alive(self, timeout: float = REUSE_TIMEOUT) -> bool:
        """Whether every lane of a kept set still answers (one round trip);
        a set still logging in is taken as it is (``wait_ready`` tells)."""
        if not self.mode and self.procs and all(p.poll() is None for p in self.procs):
            return True
        if not self.reusable:
            return False
        try:
            for proc in self.procs:
                self._ping(proc, timeout)
        except (OSError, TransferError):
            return False
        return True

    def _prepare(self) -> tuple[list[str], dict[str, str]]:
        from .connection import InvalidPrivateKey, openssh_private_text

        client = ssh_client()
        if client is None:
            raise LanesUnavailable("OpenSSH's client (ssh) is not installed")
        key = self.transport.get_remote_server_key()
        algorithms = HOST_KEY_ALGORITHMS.get(key.get_name())
        if algorithms is None:
            raise LanesUnavailable(f"host key type {key.get_name()} is not one OpenSSH is given")
        peer = self.transport.getpeername()
        address, port = str(peer[0]), int(peer[1])
        self.folder = private_folder(runs_helper=bool(self.config.get("password")))
        known_hosts = Path(self.folder) / "known_hosts"
        known_hosts.write_text(f"{HOST_ALIAS} {key.get_name()} {key.get_base64()}\n")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.folder, "LC_ALL": "C"}
        methods = []
        identity = "none"
        if self.config.get("private_key"):
            try:
                text = openssh_private_text(self.config["private_key"], self.config.get("passphrase") or None)
            except InvalidPrivateKey as exc:
                raise LanesUnavailable(f"the stored key cannot be handed over ({exc})") from None
            try:
                self.key_fd = os.memfd_create("portal-ssh-key")
            except (AttributeError, OSError):
                raise LanesUnavailable("this system cannot hold a key in memory (memfd)") from None
            os.fchmod(self.key_fd, 0o600)
            os.write(self.key_fd, text.encode())
            # ssh closes every inherited descriptor when it starts: it opens
            # the key through ours (same user) instead.
            identity = f"/proc/{os.getpid()}/fd/{self.key_fd}"
            if not os.path.exists(identity):
                raise LanesUnavailable("/proc is not mounted")
            methods.append("publickey")
        if self.config.get("password"):
            askpass = Path(self.folder) / "askpass"
            askpass.write_text(ASKPASS)
            askpass.chmod(0o700)
            env.update(
                SSH_ASKPASS=str(askpass),
                SSH_ASKPASS_REQUIRE="force",
                DISPLAY="portal:0",
                PORTAL_SSH_SECRET=self.config["password"],
            )
            methods.append("password")
        if not methods:
            raise LanesUnavailable("no password or key configured")
        options = {
            "HostKeyAlias": HOST_ALIAS,
            "UserKnownHostsFile": str(known_hosts),
            "GlobalKnownHostsFile": "/dev/null",
            "StrictHostKeyChecking": "yes",
            "HostKeyAlgorithms": algorithms,
            "CheckHostIP": "no",
            "UpdateHostKeys": "no",
            "PreferredAuthentications": ",".join(methods),
            "NumberOfPasswordPrompts": "1",
            "IdentitiesOnly": "yes",
            "IdentityAgent": "none",
            "IdentityFile": identity,
            "KbdInteractiveAuthentication": "no",
            "GSSAPIAuthentication": "no",
            "HostbasedAuthentication": "no",
            "ControlMaster": "no",
            "ControlPath": "none",
            "ProxyCommand": "none",
            "ProxyJump": "none",
            "ForwardAgent": "no",
            "ForwardX11": "no",
            "ClearAllForwardings": "yes",
            "PermitLocalCommand": "no",
            "ConnectTimeout": "20",
            "ConnectionAttempts": "1",
            "ServerAliveInterval": "15",
            "ServerAliveCountMax": "8",
            "Ciphers": CIPHERS,
            "KexAlgorithms": KEX_ALGORITHMS,
            "Compression": "no",
            "LogLevel": "ERROR",
            "EscapeChar": "none",
            "RequestTTY": "no",
            "AddKeysToAgent": "no",
            "CanonicalizeHostname": "no",
        }
        argv = [client, "-F", "/dev/null", "-T", "-p", str(port), "-l", self.config["username"]]
        for name, value in options.items():
            argv += ["-o", f"{name}={value}"]
        argv += ["--", address]
        return argv, env

    # -- the upload ---------------------------------------------------------------
    def start(self) -> None:
        """Start every lane's login (not waited for: ``wait_ready``)."""
        if self.procs:
            return
        argv, env = self._prepare()
        command = "sh -c " + shlex.quote(LANE_SCRIPT)
        for _ in range(LANES):
            self.procs.append(
                subprocess.Popen(
                    [*argv, command],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,
                )
            )
        for proc in self.procs:
            assert proc.stdin is not None
            try:  # fewer, bigger hand-overs to ssh (Linux; the default pipe holds 64 KiB)
                fcntl.fcntl(proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            except (AttributeError, OSError):
                pass

    def wait_ready(self) -> str:
        """Every lane's READY line, skipping what a chatty login script printed
        before it; returns the lanes' mode. Raises LanesUnavailable."""
        if self.mode:
            return self.mode
        self.start()
        deadline = time.monotonic() + READY_TIMEOUT
        modes = set()
        for proc in self.procs:
            line = self._line(proc, deadline, READY + " ", "log in")
            modes.add(line[len(READY) + 1 :])
        if len(modes) != 1 or not modes <= {SEGMENTS, WHOLE}:
            raise LanesUnavailable(f"the lanes on {self.where} answered {sorted(modes)!r}")
        self.mode = modes.pop()
        return self.mode

    def send(
        self,
        local: LocalFile,
        temp: str,
        ranges: Sequence[Range],
        progress: ProgressCallback,
        started: Callable[[], None] = lambda: None,
    ) -> None:
        """Write ``ranges`` of ``local`` into the existing remote file ``temp``
        (each range in order; the ranges themselves in any order). Raises
        LanesUnavailable if a lane could not start (nothing sent), a
        TransferError if one failed on the way (each range then holds a
        prefix of its bytes; the next run scans for it). ``started`` is called
        once every lane is logged in, before the first byte."""
        if not fits_a_line(temp):
            raise LanesUnavailable("the file's path cannot be handed to the lanes")
        mode = self.wait_ready()
        if mode == WHOLE and len(ranges) > len(self.procs):
            raise LanesUnavailable(f"the server's dd writes one range per connection, {len(ranges)} are left")
        started()
        self._feed(local, temp, ranges, progress)

    def _line(self, proc: subprocess.Popen[bytes], deadline: float, prefix: str, doing: str) -> str:
        """The next line of ``proc``'s output that starts with ``prefix``
        (read unbuffered: select() must see what is left)."""
        assert proc.stdout is not None
        out, seen = proc.stdout.fileno(), b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([out], [], [], left)[0]:
                if doing == "log in":
                    raise LanesUnavailable(f"OpenSSH's client did not log in to {self.where} in time")
                raise TransferError(f"The server {self.where} did not answer while {doing}")
            byte = os.read(out, 1)
            if not byte:
                status = proc.wait()
                if doing == "log in":
                    raise LanesUnavailable(
                        f"OpenSSH's client could not log in to {self.where} (exit status {status})"
                    )
                raise self._failure(status or 255)
            if byte != b"\n":
                seen = (seen + byte)[-READY_WINDOW:]
                continue
            line = seen.decode(errors="replace")
            seen = b""
            if line.startswith(prefix):
                return line

    def _ping(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        """A round trip through the lane's shell: every segment before it is
        written (dd exits 0) when the answer comes."""
        assert proc.stdin is not None
        self._pings += 1
        token = f"pong {self._pings} ."
        os.write(proc.stdin.fileno(), f"ping {self._pings} -\n".encode())
        self._line(proc, time.monotonic() + timeout, token, "confirming the upload")

    def _feed(self, local: LocalFile, temp: str, ranges: Sequence[Range], progress: ProgressCallback) -> None:
        events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        stop = threading.Event()
        work: queue.SimpleQueue[Range] = queue.SimpleQueue()
        for item in ranges:
            work.put(item)
        fd = os.open(local.path, os.O_RDONLY)
        path = temp if temp.startswith("/") else f"./{temp}"

        def send_range(pipe: int, start: int, end: int) -> None:
            os.write(pipe, f"{start} {end - start} {path}\n".encode())
            offset = start
            while offset < end and not stop.is_set():
                sent = _splice(fd, pipe, min(FEED, end - offset), offset)
                if not sent:
                    raise TransferError(f"{local.path} shrank while being uploaded")
                offset += sent
                events.put(("sent", sent))

        def lane(proc: subprocess.Popen[bytes]) -> None:
            assert proc.stdin is not None
            pipe = proc.stdin.fileno()
            try:
                if self.mode == WHOLE:
                    start, end = work.get_nowait()
                    send_range(pipe, start, end)
                    proc.stdin.close()
                    status = proc.wait()
                    if status and not stop.is_set():
                        raise self._failure(status)
                    return
                while not stop.is_set():
                    try:
                        start, end = work.get_nowait()
                    except queue.Empty:
                        break
                    send_range(pipe, start, end)
                if not stop.is_set():
                    self._ping(proc, CONFIRM_TIMEOUT)
            except queue.Empty:
                proc.stdin.close()  # more lanes than ranges left
                proc.wait()
            except OSError:  # EPIPE: the lane's ssh, or the dd behind it, is gone
                if not stop.is_set():
                    try:
                        status = proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        status = 255
                    events.put(("error", self._failure(status or 255)))
            except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
                events.put(("error", exc))
            finally:
                events.put(("done", None))

        threads = [threading.Thread(target=lane, args=(proc,), daemon=True) for proc in self.procs]
        ok = False
        try:
            for thread in threads:
                thread.start()
            running = len(threads)
            while running:
                what, value = events.get()
                if what == "sent":
                    progress(value)
                elif what == "error":
                    raise value
                else:
                    running -= 1
            ok = True
        finally:
            stop.set()
            if not ok:
                self._kill()  # wakes a lane blocked on its full pipe (EPIPE)
            for thread in threads:
                thread.join()
            if not ok or self.mode == WHOLE:
                self.stop()  # only now: a lane thread may still have been using its pipe
            os.close(fd)

    def _failure(self, status: int) -> TransferError:
        if status == 255:
            return TransferError(f"Connection to {self.where} was lost while uploading (lane exit status 255)")
        return TransferError(f"The server {self.where} stopped writing the file (dd exit status {status})")

    def _kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()

    def stop(self) -> None:
        """Kill lanes still running (an error, a lost lease, the end) and reap them."""
        self._kill()
        for proc in self.procs:
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass
        self.procs = []
        self.mode = ""


def _splice(src: int, pipe: int, count: int, offset: int) -> int:
    try:
        return os.splice(src, pipe, count, offset_src=offset)
    except (AttributeError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno not in (22, 38):  # EINVAL, ENOSYS: no splice here
            raise
    data = os.pread(src, min(count, MiB), offset)
    return os.write(pipe, data) if data else 0

