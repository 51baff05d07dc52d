"""Big files to shell accounts over OpenSSH's own client on several connections
("lanes", delivery/destinations/ssh/lanes.py), against the real OpenSSH sshd
of tests/servers/sshd.py. ``lanes.MIN_SIZE`` is lowered to 4 MiB so files of
tens of MiB take the lanes and the tests stay fast. Logins are counted in
sshd's own log ("Accepted password/publickey for ...")."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import paramiko
import psutil
import pytest

from delivery.destinations.base import CoolOff, ResumePoint, TransferError
from delivery.destinations.scp import SCPDestination
from delivery.destinations.sftp import SFTPDestination
from delivery.destinations.ssh import generate_keypair, lanes, pool
from delivery.destinations.ssh.destination import CRC_VERIFIED, VERIFIED_REMOTELY
from tests.delivery.test_sftp import MB, key_only, leftovers, make_file, sha256_of
from tests.servers import sshd as servers
from tests.servers.sshd import NOSHELL_USER, SHELL_USER, SSHServer

sshd_server = servers.sshd_server
sshd = servers.sshd

KINDS = [SFTPDestination, SCPDestination]
KIND_IDS = ["sftp", "scp"]
BIG = 20 * MB + 12345  # over lanes (MIN_SIZE is 4 MiB here), not on a SCAN_BLOCK


@pytest.fixture(autouse=True)
def _small_lanes(monkeypatch):
    monkeypatch.setattr(lanes, "MIN_SIZE", 4 * MB)
    monkeypatch.setattr(lanes, "_cooling", CoolOff())


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    """The temp dir the lanes make their private folder in (this test's own, so
    other test sessions on the machine cannot be mistaken for ours)."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def logins(server: SSHServer) -> int:
    text = (server.workdir / "sshd.log").read_text()
    return len(re.findall(rf"Accepted (?:password|publickey) for {SHELL_USER}\b", text))


def settled_logins(server: SSHServer, at_least: int) -> int:
    """sshd writes its log line a moment after the client sees the login."""
    deadline = time.monotonic() + 5
    while logins(server) < at_least and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # and no more come
    return logins(server)


def ssh_children() -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.name() == "ssh":
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def no_ssh_child_within(seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while ssh_children():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def key_body(server: SSHServer) -> list[str]:
    """The base64 lines of the client's private key (what must never leak)."""
    return [line for line in server.client_key.read_text().splitlines() if line and "PRIVATE" not in line]


class Saved:
    """A ResumePoint whose saves and notes are kept, as the engine keeps them on the row."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.saves: list[dict] = []
        self.point = ResumePoint(save=self.saves.append, note=self.notes.append)


class LeaseLost(Exception):
    pass


# -- 1. a big file arrives over two lanes -------------------------------------------------
@pytest.mark.parametrize("login", ["password", "key"])
@pytest.mark.parametrize("cls", KINDS, ids=KIND_IDS)
def test_a_big_file_goes_over_two_more_logins_and_arrives_whole(cls, login, sshd, tmp_path):
    config = sshd.config() if login == "password" else key_only(sshd, sshd.client_key.read_text())
    local = make_file(tmp_path, BIG)
    remote = f"lanes/{cls.__name__}/{login}/big.mp4"
    before = logins(sshd)
    sent: list[int] = []
    with cls(config) as dest:
        dest.upload(local, remote, sent.append)
        assert dest.lanes_used == 2
        assert dest.verify(local, remote)
        assert dest.last_verification == CRC_VERIFIED
    assert sum(sent) == local.size
    # the control connection, plus one per lane
    assert settled_logins(sshd, before + 3) == before + 3
    placed = sshd.upload_dir() / remote
    assert placed.read_bytes() == local.path.read_bytes()
    assert leftovers(placed.parent) == []


@pytest.mark.parametrize(
    "size,used,logged,verified",
    [(4 * MB - 1, 0, 1, VERIFIED_REMOTELY), (4 * MB, 2, 3, CRC_VERIFIED)],
    ids=["under", "at"],
)
def test_the_threshold_is_min_size(size, used, logged, verified, sshd, tmp_path):
    local = make_file(tmp_path, size)
    before = logins(sshd)
    with SFTPDestination(sshd.config()) as dest:
        dest.upload(local, "lanes/small/a.mp4", lambda _n: None)
        assert dest.lanes_used == used
        assert dest.verify(local, "lanes/small/a.mp4")
        assert dest.last_verification == verified
    assert settled_logins(sshd, before + logged) == before + logged


@pytest.mark.parametrize("cls", KINDS, ids=KIND_IDS)
def test_an_account_without_a_shell_gets_no_lanes(cls, sshd, tmp_path):
    local = make_file(tmp_path, 9 * MB)
    before = len(re.findall(rf"Accepted password for {NOSHELL_USER}\b", _log(sshd)))
    with cls(sshd.config(NOSHELL_USER)) as dest:
        dest.upload(local, "lanes/noshell/big.mp4", lambda _n: None)
        assert dest.lanes_used == 0
        assert dest.verify(local, "lanes/noshell/big.mp4")
    time.sleep(0.3)
    assert len(re.findall(rf"Accepted password for {NOSHELL_USER}\b", _log(sshd))) == before + 1
    assert sha256_of(sshd.upload_dir(NOSHELL_USER) / "lanes/noshell/big.mp4") == local.sha256_hex()


def _log(server: SSHServer) -> str:
    return (server.workdir / "sshd.log").read_text()


# -- 2. the pinned host key holds for the lanes ------------------------------------------
def _impostor_key(transport: paramiko.Transport, monkeypatch) -> None:
    """The control connection reports another host key to the lanes than the
    server's: ssh must then refuse the server it reaches."""
    private, _public = generate_keypair()
    other = paramiko.Ed25519Key.from_private_key(io.StringIO(private))
    monkeypatch.setattr(transport, "get_remote_server_key", lambda: other)


def test_lanes_refuse_a_server_whose_key_is_not_the_checked_one(sshd, tmp_path, monkeypatch):
    local = make_file(tmp_path, 6 * MB)
    before = logins(sshd)
    with SFTPDestination(sshd.config()) as dest:
        assert settled_logins(sshd, before + 1) == before + 1
        temp = str(sshd.upload_dir() / ".x.part-00000000")
        with dest.sftp.open(temp, "wb"):
            pass
        _impostor_key(dest.transport, monkeypatch)
        with lanes.Lanes(dest.transport, dest.config, dest.where) as running, pytest.raises(
            lanes.LanesUnavailable
        ):
            running.send(local, temp, lanes.split(0, local.size), lambda _n: None)
    assert os.path.getsize(temp) == 0  # not a byte written
    assert settled_logins(sshd, before + 1) == before + 1  # no lane logged in
    os.unlink(temp)


def test_a_lane_never_makes_a_temporary_file_that_is_gone(sshd, tmp_path):
    """A lane still starting when its upload failed (and the temp file was
    removed) must not make the file again: GNU dd's nocreat."""
    local = make_file(tmp_path, 6 * MB)
    temp = sshd.upload_dir() / ".gone.part-00000000"  # never made
    with SFTPDestination(sshd.config()) as dest:
        with lanes.Lanes(dest.transport, dest.config, dest.where) as running, pytest.raises(
            TransferError, match=r"stopped writing the file \(dd exit status 1\)"
        ):
            running.send(local, str(temp), lanes.split(0, local.size), lambda _n: None)
    assert not temp.exists()


@pytest.mark.parametrize("cls", KINDS, ids=KIND_IDS)
def test_an_upload_whose_lanes_meet_another_key_goes_over_paramiko_and_cools_off(
    cls, sshd, tmp_path, monkeypatch, caplog
):
    local = make_file(tmp_path, BIG)
    remote = f"lanes/pin-{cls.__name__}/big.mp4"
    before = logins(sshd)
    caplog.set_level(logging.WARNING)
    with cls(sshd.config()) as dest:
        _impostor_key(dest.transport, monkeypatch)
        dest.upload(local, remote, lambda _n: None)
        assert dest.lanes_used == 0
        assert lanes.cooling(dest._pool_key)
        assert not dest.lanes_for(local)
        key = dest._pool_key
    assert settled_logins(sshd, before + 1) == before + 1  # no lane logged in
    assert sha256_of(sshd.upload_dir() / remote) == local.sha256_hex()
    assert leftovers((sshd.upload_dir() / remote).parent) == []
    assert "big files go over one connection for now" in caplog.text

    # The next upload to that server, on a fresh and genuine connection, does
    # not try the lanes while the server cools off.
    pool.close_all()  # the impostor-reporting transport goes
    assert lanes.cooling(key)
    with cls(sshd.config()) as dest:
        dest.upload(local, remote, lambda _n: None)
        assert dest.lanes_used == 0
        assert dest.verify(local, remote)
    assert settled_logins(sshd, before + 2) == before + 2


# -- 3. no secret on disk or in argv ------------------------------------------------------
@pytest.mark.parametrize("login", ["password", "key"])
def test_no_secret_is_on_disk_or_in_a_command_line(login, sshd, tmp_path, scratch):
    config = sshd.config() if login == "password" else key_only(sshd, sshd.client_key.read_text())
    secrets = [sshd.passwords[SHELL_USER], *key_body(sshd)]
    local = make_file(tmp_path, 40 * MB)
    seen: dict[str, object] = {}

    def inspect(_n: int) -> None:
        if seen:
            return  # the first report: both lanes are running
        procs = ssh_children()
        seen["cmdlines"] = [p.cmdline() for p in procs]
        seen["environ"] = [Path(f"/proc/{p.pid}/environ").read_bytes().decode(errors="replace") for p in procs]
        folders = list(scratch.glob("portal-lanes-*"))
        seen["folders"] = folders
        seen["files"] = {f.name: f.read_text() for folder in folders for f in folder.iterdir()}
        identities = [
            arg.split("=", 1)[1] for p in procs for arg in p.cmdline() if arg.startswith("IdentityFile=")
        ]
        seen["identities"] = {i: (os.readlink(i) if i != "none" else "none") for i in identities}

    with SFTPDestination(config) as dest:
        dest.upload(local, "lanes/secret/big.mp4", inspect)
        assert dest.lanes_used == 2

    assert len(seen["cmdlines"]) == 2
    for argv in seen["cmdlines"]:
        assert argv[-1].startswith("sh -c ")
        for secret in secrets:
            assert not any(secret in arg for arg in argv)
    assert len(seen["folders"]) == 1
    expected = {"known_hosts", "askpass"} if login == "password" else {"known_hosts"}
    assert set(seen["files"]) == expected
    for text in seen["files"].values():
        for secret in secrets:
            assert secret not in text
    for env in seen["environ"]:
        for secret in key_body(sshd):
            assert secret not in env
    if login == "key":
        # the key is read through a descriptor of ours onto memory, not a file
        [(path, target)] = seen["identities"].items()
        assert path.startswith(f"/proc/{os.getpid()}/fd/")
        assert target.startswith("/memfd:")
    else:
        assert set(seen["identities"]) == {"none"}
    # The lanes stay logged in with the kept connection, and go with it.
    assert len(list(scratch.glob("portal-lanes-*"))) == 1
    assert len(ssh_children()) == 2
    pool.close_all()
    assert not list(scratch.glob("portal-lanes-*"))
    assert no_ssh_child_within(0)


# -- 4. fallback when OpenSSH's client cannot do it ------------------------------------------
@pytest.mark.parametrize("cls", KINDS, ids=KIND_IDS)
def test_an_ssh_client_that_cannot_start_leaves_the_upload_to_paramiko(
    cls, sshd, tmp_path, monkeypatch, caplog, scratch
):
    monkeypatch.setattr(lanes, "ssh_client", lambda: "/bin/false")
    caplog.set_level(logging.WARNING)
    local = make_file(tmp_path, BIG)
    remote = f"lanes/false-{cls.__name__}/big.mp4"
    with cls(sshd.config()) as dest:
        dest.upload(local, remote, lambda _n: None)
        assert dest.lanes_used == 0
        assert dest.verify(local, remote)
    assert sha256_of(sshd.upload_dir() / remote) == local.sha256_hex()
    assert leftovers((sshd.upload_dir() / remote).parent) == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("could not log in" in w and "big files go over one connection" in w for w in warnings)
    assert sshd.passwords[SHELL_USER] not in caplog.text
    assert not list(scratch.glob("portal-lanes-*"))


@pytest.fixture
def noexec(tmp_path):
    """Mounts a small tmpfs with noexec (as hardened hosts mount /tmp) at a path."""
    mounted: list[Path] = []

    def mount(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "noexec,size=16m,mode=0755", "tmpfs", str(path)], check=True
        )
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_noexec_temp_folder_puts_the_password_helper_in_data_dir_tmp_lanes(
    sshd, tmp_path, monkeypatch, settings, noexec
):
    monkeypatch.setattr(tempfile, "tempdir", str(noexec(tmp_path / "noexec-tmp")))
    settings.DATA_DIR = tmp_path / "data"
    local = make_file(tmp_path, BIG)
    seen: list[str] = []

    def inspect(_n: int) -> None:
        if not seen:
            seen.extend(str(p) for p in (tmp_path / "data" / "tmp" / "lanes").glob("portal-lanes-*/askpass"))

    with SFTPDestination(sshd.config()) as dest:
        dest.upload(local, "lanes/noexec/big.mp4", inspect)
        # Without another folder ssh could not run the helper, so no lane could log in.
        assert dest.lanes_used == 2
    assert len(seen) == 1
    assert sha256_of(sshd.upload_dir() / "lanes/noexec/big.mp4") == local.sha256_hex()
    pool.close_all()  # the lanes were kept with the connection
    assert not list((tmp_path / "data" / "tmp" / "lanes").glob("portal-lanes-*"))


def test_a_key_login_keeps_its_folder_in_a_noexec_temp_folder(sshd, tmp_path, monkeypatch, settings, noexec):
    scratch = noexec(tmp_path / "noexec-tmp")
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    settings.DATA_DIR = tmp_path / "data"
    seen: list[Path] = []
    with SFTPDestination(key_only(sshd, sshd.client_key.read_text())) as dest:
        dest.upload(make_file(tmp_path, BIG), "lanes/noexec-key/big.mp4", lambda _n: seen.extend(scratch.glob("p*")))
        assert dest.lanes_used == 2  # nothing to run: known_hosts only
    assert seen and not (tmp_path / "data" / "tmp").exists()


def test_with_no_folder_that_may_run_the_helper_the_upload_says_why_and_goes_over_paramiko(
    sshd, tmp_path, monkeypatch, settings, noexec, caplog
):
    monkeypatch.setattr(tempfile, "tempdir", str(noexec(tmp_path / "noexec-tmp")))
    settings.DATA_DIR = noexec(tmp_path / "noexec-data")
    caplog.set_level(logging.WARNING)
    local = make_file(tmp_path, BIG)
    with SFTPDestination(sshd.config()) as dest:
        dest.upload(local, "lanes/noexec-both/big.mp4", lambda _n: None)
        assert dest.lanes_used == 0
        assert dest.verify(local, "lanes/noexec-both/big.mp4")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("mounted noexec" in w and "big files go over one connection" in w for w in warnings)
    assert sha256_of(sshd.upload_dir() / "lanes/noexec-both/big.mp4") == local.sha256_hex()


def test_a_first_scp_upload_that_falls_back_says_nothing_about_resuming(sshd, tmp_path, monkeypatch):
    monkeypatch.setattr(lanes, "ssh_client", lambda: "/bin/false")
    local = make_file(tmp_path, BIG)
    saved = Saved()
    with SCPDestination(sshd.config()) as dest:
        dest.upload(local, "lanes/false-note/big.mp4", lambda _n: None, saved.point)
        assert dest.lanes_used == 0
    assert saved.notes == []


# -- 5. a cut upload continues where each lane stopped ------------------------------------
@pytest.mark.timeout(120)
@pytest.mark.parametrize("cls", KINDS, ids=KIND_IDS)
def test_a_cut_upload_continues_each_lane_where_the_server_stopped(cls, sshd, tmp_path):
    size = 40 * MB + 777
    local = make_file(tmp_path, size)
    remote = f"lanes/cut-{cls.__name__}/big.mp4"
    folder = sshd.upload_dir() / remote.rsplit("/", 1)[0]
    saved = Saved()
    first = [0]

    # A cut loses what was in flight (per lane: our 1 MiB pipe, an SSH window,
    # socket buffers): after 16 MiB each lane has written a few scan blocks.
    def cut_after_16mb(n: int) -> None:
        first[0] += n
        if first[0] - n < 16 * MB <= first[0]:
            sshd.kill_connections()

    with cls(sshd.config()) as dest, pytest.raises(TransferError) as err:
        dest.upload(local, remote, cut_after_16mb, saved.point)
    assert not err.value.permanent
    state = saved.point.state
    assert set(state) == {"temp", "lanes"}
    assert state["lanes"] == [list(r) for r in lanes.segments(0, size)]
    [partial] = leftovers(folder)
    assert state["temp"] == str(folder / partial)
    assert first[0] < size
    assert no_ssh_child_within(2)

    second: list[int] = []
    with cls(sshd.config()) as dest:
        dest.upload(local, remote, second.append, saved.point)
        assert dest.lanes_used == 2
        assert dest.verify(local, remote)
        assert dest.last_verification == CRC_VERIFIED
    [note] = [n for n in saved.notes if "already there" in n]
    there = int(re.search(r": (\d+) of (\d+) bytes are already there", note).group(1))
    assert note == (
        f"resuming {folder / 'big.mp4'} over 2 connections: {there} of {size} bytes are already there"
    )
    assert there == size - sum(second) > 0
    resent = sum(second) - (size - first[0])  # what run 1 counted as sent but had to go again
    assert resent <= 16 * MB
    assert not any("cannot resume" in n for n in saved.notes)
    assert sha256_of(folder / "big.mp4") == local.sha256_hex()
    assert leftovers(folder) == []


def test_a_finished_lane_is_not_sent_again(sshd, tmp_path):
    """State saying the temp file holds everything: a scan, and no lane started."""
    size = 12 * MB + 5
    local = make_file(tmp_path, size)
    folder = user_folder(sshd, "lanes/whole")
    temp = folder / ".big.mp4.part-0000cafe"
    temp.write_bytes(local.path.read_bytes())
    os.chown(temp, *_owner(sshd))
    saved = Saved()
    saved.point.state = {"temp": str(temp), "lanes": [list(r) for r in lanes.split(0, size)]}
    sent: list[int] = []
    with SFTPDestination(sshd.config()) as dest:
        dest.upload(local, "lanes/whole/big.mp4", sent.append, saved.point)
        assert dest.lanes_used == 0
        assert dest.verify(local, "lanes/whole/big.mp4")
    assert sum(sent) == 0
    assert f"{size} of {size} bytes are already there" in saved.notes[-1]
    assert sha256_of(folder / "big.mp4") == local.sha256_hex()
    assert leftovers(folder) == []


def test_a_partly_wrong_temp_file_is_rewritten_from_its_first_bad_block(sshd, tmp_path):
    size = 16 * MB
    local = make_file(tmp_path, size)
    folder = user_folder(sshd, "lanes/partly")
    temp = folder / ".big.mp4.part-0000f00d"
    data = bytearray(local.path.read_bytes())
    data[3 * MB + 10] ^= 0xFF  # lane 1: good up to its second scan block
    data[12 * MB :] = b"\0" * (4 * MB)  # lane 2: its last 4 MiB never came
    temp.write_bytes(bytes(data))
    os.chown(temp, *_owner(sshd))
    saved = Saved()
    saved.point.state = {"temp": str(temp), "lanes": [[0, 8 * MB], [8 * MB, size]]}
    sent: list[int] = []
    with SFTPDestination(sshd.config()) as dest:
        dest.upload(local, "lanes/partly/big.mp4", sent.append, saved.point)
        assert dest.lanes_used == 2
        assert dest.verify(local, "lanes/partly/big.mp4")
    assert sum(sent) == (8 * MB - 2 * MB) + (size - 12 * MB)
    assert saved.saves[0] == {"temp": str(temp), "lanes": [[0, 8 * MB], [8 * MB, size]]}
    assert sha256_of(folder / "big.mp4") == local.sha256_hex()


def _owner(server: SSHServer) -> tuple[int, int]:
    st = server.upload_dir().stat()
    return st.st_uid, st.st_gid


def user_folder(server: SSHServer, relative: str) -> Path:
    """A folder under the test user's upload folder, owned by that user (as if
    an upload had made it), so later uploads can write in it."""
    folder = server.upload_dir()
    for part in relative.split("/"):
        folder = folder / part
        if not folder.exists():
            folder.mkdir()
            os.chown(folder, *_owner(server))
    return folder


# -- 6. a lost lease stops the lanes at once ---------------------------------------------
@pytest.mark.parametrize("cls", KINDS, ids=KIND_IDS)
def test_an_exception_from_progress_stops_every_lane(cls, sshd, tmp_path, scratch):
    local = make_file(tmp_path, 40 * MB)
    saved = Saved()
    running: list[int] = []

    def lose_lease(n: int, sent=[0]) -> None:  # noqa: B006 - a counter for this test
        sent[0] += n
        if sent[0] >= MB:
            running.append(len(ssh_children()))
            raise LeaseLost

    started = time.monotonic()
    with cls(sshd.config()) as dest, pytest.raises(LeaseLost):
        dest.upload(local, f"lanes/lease-{cls.__name__}/big.mp4", lose_lease, saved.point)
    assert running == [2]
    assert no_ssh_child_within(2)
    assert time.monotonic() - started < 10
    assert set(saved.point.state) == {"temp", "lanes"}  # kept for the next run
    assert not list(scratch.glob("portal-lanes-*"))


def _temp_turns_read_only(cls, monkeypatch) -> None:
    """The temp file turns read-only for the account between its creation (over
    the control connection) and the lanes' start: dd cannot open it, as on a
    full or failing disk it could not write."""

    def read_only(path: str) -> None:
        os.chmod(path, 0o444)  # the server's disk is ours here

    if cls is SFTPDestination:
        created = cls._create_empty

        def create(self, path: str) -> None:
            created(self, path)
            read_only(path)

        monkeypatch.setattr(cls, "_create_empty", create)
    else:
        run_checked = cls._run_checked

        def checked(self, command: str, folder: str, doing: str) -> None:
            run_checked(self, command, folder, doing)
            if command.startswith("touch -- "):
                read_only(doing.removeprefix("creating "))

        monkeypatch.setattr(cls, "_run_checked", checked)


@pytest.mark.parametrize("cls", KINDS, ids=KIND_IDS)
def test_a_lane_whose_dd_fails_is_a_transient_error_and_stops_the_others(
    cls, sshd, tmp_path, monkeypatch, scratch
):
    _temp_turns_read_only(cls, monkeypatch)
    local = make_file(tmp_path, 20 * MB)
    remote = f"lanes/ddfail-{cls.__name__}/big.mp4"
    with cls(sshd.config()) as dest, pytest.raises(TransferError) as err:
        dest.upload(local, remote, lambda _n: None)
    assert not err.value.permanent
    assert f"127.0.0.1:{sshd.port}" in err.value.message
    assert sshd.passwords[SHELL_USER] not in err.value.message
    assert not lanes.cooling(dest._pool_key)  # lanes did start: not a reason to stop using them
    assert no_ssh_child_within(2)
    assert not list(scratch.glob("portal-lanes-*"))
    assert not (sshd.upload_dir() / remote).exists()
    assert leftovers((sshd.upload_dir() / remote).parent) == []  # no resume point: removed


def test_a_failing_dd_is_not_reported_as_a_lost_connection(sshd, tmp_path, monkeypatch):
    _temp_turns_read_only(SFTPDestination, monkeypatch)
    local = make_file(tmp_path, 20 * MB)
    with SFTPDestination(sshd.config()) as dest, pytest.raises(TransferError) as err:
        dest.upload(local, "lanes/ddfail-message/big.mp4", lambda _n: None)
    assert "was lost" not in err.value.message
    assert "stopped writing the file (dd exit status 1)" in err.value.message


# -- 7. egress: the lanes go to the address the control connection was vetted for --------
def test_lanes_connect_to_the_control_connections_ip_not_the_name(sshd, tmp_path):
    with SFTPDestination(sshd.config(host="localhost")) as dest:
        assert dest.transport.getpeername()[0] == "127.0.0.1"
        with lanes.Lanes(dest.transport, dest.config, dest.where) as running:
            argv, env = running._prepare()
            folder = Path(running.folder)
            known = (folder / "known_hosts").read_text()
        assert not folder.exists()
    assert argv[-2:] == ["--", "127.0.0.1"]
    assert "localhost" not in " ".join(argv)
    assert argv[argv.index("-p") + 1] == str(sshd.port)
    assert argv[1:3] == ["-F", "/dev/null"]
    assert "StrictHostKeyChecking=yes" in argv and f"HostKeyAlias={lanes.HOST_ALIAS}" in argv
    host_key = sshd.host_key.with_suffix(".pub").read_text().split()
    assert known.split() == [lanes.HOST_ALIAS, host_key[0], host_key[1]]
    assert sshd.passwords[SHELL_USER] == env["PORTAL_SSH_SECRET"]
    assert sshd.passwords[SHELL_USER] not in " ".join(argv)


def test_a_big_file_to_a_host_name_goes_over_lanes(sshd, tmp_path):
    local = make_file(tmp_path, 9 * MB + 1)
    with SFTPDestination(sshd.config(host="localhost")) as dest:
        dest.upload(local, "lanes/name/big.mp4", lambda _n: None)
        assert dest.lanes_used == 2
        assert dest.verify(local, "lanes/name/big.mp4")


# -- 8. permission denied -------------------------------------------------------------------
@pytest.mark.parametrize("cls", KINDS, ids=KIND_IDS)
def test_a_read_only_root_is_the_kinds_permission_denied(cls, sshd, tmp_path, scratch):
    local = make_file(tmp_path, 6 * MB)
    before = logins(sshd)
    with cls(sshd.config(root=str(sshd.readonly_dir))) as dest, pytest.raises(TransferError) as err:
        dest.upload(local, "big.mp4", lambda _n: None, ResumePoint())
    assert err.value.permanent
    assert "Permission denied" in err.value.message
    assert str(sshd.readonly_dir) in err.value.message
    assert dest.lanes_used == 0
    assert settled_logins(sshd, before + 1) == before + 1  # no lane was started
    assert not list(scratch.glob("portal-lanes-*"))
    assert list(sshd.readonly_dir.iterdir()) == []


# -- 9. the cksum verify ----------------------------------------------------------------------
@pytest.mark.parametrize("cls", KINDS, ids=KIND_IDS)
def test_the_cksum_verify_catches_a_changed_byte_swapped_blocks_and_an_extra_byte(cls, sshd, tmp_path):
    local = make_file(tmp_path, 10 * MB + 3)
    remote = f"lanes/cksum-{cls.__name__}/big.mp4"
    placed = sshd.upload_dir() / remote
    with cls(sshd.config()) as dest:
        dest.upload(local, remote, lambda _n: None)
        assert dest.verify(local, remote)
        assert dest.last_verification == CRC_VERIFIED
        original = placed.read_bytes()

        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0x01
        placed.write_bytes(bytes(flipped))
        assert not dest.verify(local, remote)
        assert dest.last_verification == CRC_VERIFIED

        swapped = original[MB : 2 * MB] + original[:MB] + original[2 * MB :]
        placed.write_bytes(swapped)
        assert len(swapped) == local.size
        assert not dest.verify(local, remote)

        placed.write_bytes(original + b"x")
        assert not dest.verify(local, remote)

        placed.write_bytes(original)
        assert dest.verify(local, remote)


# -- 10. units --------------------------------------------------------------------------------
S = lanes.SCAN_BLOCK


@pytest.mark.parametrize(
    "start,end,count",
    [
        (0, 40 * MB + 777, 2),
        (0, 20 * MB, 2),
        (0, S, 1),
        (0, S + 1, 2),
        (0, 3 * MB, 2),
        (0, 1, 1),
        (4 * S, 9 * S + 5, 2),
        (0, 0, 0),
    ],
)
def test_split_covers_the_range_exactly_on_scan_blocks(start, end, count):
    ranges = lanes.split(start, end)
    assert len(ranges) == count <= lanes.LANES
    if not ranges:
        return
    assert ranges[0][0] == start and ranges[-1][1] == end
    for (_a, b), (c, _d) in zip(ranges, ranges[1:], strict=False):
        assert b == c  # contiguous, no gap, no overlap
    for a, b in ranges:
        assert a < b
        assert a % S == 0
    assert sum(b - a for a, b in ranges) == end - start
    for n in (3, 4):
        more = lanes.split(start, end, n)
        assert len(more) <= n
        assert sum(b - a for a, b in more) == end - start and all(a % S == 0 for a, _b in more)


def test_valid_ranges_takes_our_own_state():
    size = 40 * MB + 777
    saved = [list(r) for r in lanes.split(0, size)]
    assert lanes.valid_ranges(saved, size) == lanes.split(0, size)
    # only the whole file's lanes: a scan of them covers every byte (a narrowed
    # list once left holes when the temporary file was gone)
    assert lanes.valid_ranges([[2 * S, 10 * S], [12 * S, size]], size) is None


@pytest.mark.parametrize(
    "junk",
    [
        None,
        "0-100",
        {"0": 100},
        [],
        [[0]],
        [[0, 1, 2]],
        [(0, 4 * MB)],  # a tuple is not what JSON gives back
        [["0", 4 * MB]],
        [[0, 4.0 * MB]],
        [[0, None]],
        [[MB, 4 * MB]],  # not on a scan block
        [[0, 4 * MB], [S + 1, 8 * MB]],
        [[-S, 4 * MB]],
        [[0, 41 * MB]],  # beyond the file
        [[4 * MB, 4 * MB]],  # empty
        [[8 * MB, 4 * MB]],  # backwards
        [[0, 4 * MB], "x"],
    ],
)
def test_valid_ranges_rejects_junk(junk):
    assert lanes.valid_ranges(junk, 40 * MB) is None


def _digests(data: bytes, ranges) -> list[str]:
    out = []
    for start, end in ranges:
        for offset in range(start, end, S):
            out.append(hashlib.sha256(data[offset : min(offset + S, end)]).hexdigest())
    return out


def test_written_prefixes_stops_each_lane_at_its_first_differing_block(tmp_path):
    size = 10 * S + 123
    local = make_file(tmp_path, size)
    data = local.path.read_bytes()
    ranges = lanes.split(0, size)  # [0, 6S) and [6S, size)
    assert ranges == [(0, 6 * S), (6 * S, size)]
    good = _digests(data, ranges)
    assert len(good) == 6 + 5

    assert lanes.written_prefixes(local, ranges, good) == [6 * S, size]
    assert lanes.written_prefixes(local, ranges, []) == [0, 6 * S]
    assert lanes.written_prefixes(local, ranges, ["0" * 64] * len(good)) == [0, 6 * S]

    # lane 1 wrote 3 blocks, lane 2 two; a block matching after a bad one does not count
    made_up = list(good)
    made_up[3] = "bad"
    made_up[6 + 2] = ""
    assert lanes.written_prefixes(local, ranges, made_up) == [3 * S, 8 * S]

    # a short answer (the scan was cut): what is missing differs
    assert lanes.written_prefixes(local, ranges, good[:8]) == [6 * S, 8 * S]

    # the last, short block of the file counts as written when it matches
    last_bad = list(good)
    last_bad[-1] = hashlib.sha256(b"").hexdigest()
    assert lanes.written_prefixes(local, ranges, last_bad) == [6 * S, 10 * S]


def test_the_scan_command_prints_one_digest_per_block_on_the_server(sshd, tmp_path):
    size = 10 * S + 123
    local = make_file(tmp_path, size)
    ranges = lanes.split(0, size)
    folder = user_folder(sshd, "lanes/scan")
    temp = folder / "it's a file.bin"
    temp.write_bytes(local.path.read_bytes()[: 7 * S + 5])  # lane 2 cut after 1 block and a bit
    with SFTPDestination(sshd.config()) as dest:
        status, out, _err = dest.run(lanes.scan_command(str(temp), ranges))
    assert status == 0
    digests = [line.split()[0] for line in out.splitlines()]
    assert len(digests) == 11
    assert digests[:7] == _digests(local.path.read_bytes(), ranges)[:7]
    assert lanes.written_prefixes(local, ranges, digests) == [6 * S, 7 * S]


def test_cooling_is_per_server_and_ends(monkeypatch):
    assert not lanes.cooling("a")
    lanes.cool_off("a")
    assert lanes.cooling("a") and not lanes.cooling("b")
    monkeypatch.setattr(lanes, "COOL_OFF", 0.0)
    lanes.cool_off("a")
    assert not lanes.cooling("a")


@pytest.mark.parametrize("cls", KINDS, ids=KIND_IDS)
def test_a_saved_partial_file_that_is_gone_is_sent_whole(cls, sshd, tmp_path):
    size = 16 * MB
    local = make_file(tmp_path, size)
    folder = user_folder(sshd, f"lanes/gone-{cls.__name__}")
    temp = folder / ".big.mp4.part-0000dead"  # never made, or removed by the server's owner
    saved = Saved()
    # what a run that resumed and was cut again saves: only what was left to send
    saved.point.state = {"temp": str(temp), "lanes": [[2 * MB, 8 * MB], [12 * MB, size]]}
    remote = f"lanes/gone-{cls.__name__}/big.mp4"
    with cls(sshd.config()) as dest:
        dest.upload(local, remote, lambda _n: None, saved.point)
        assert dest.verify(local, remote)
    assert sha256_of(folder / "big.mp4") == local.sha256_hex()


def test_an_encrypted_pem_key_is_handed_to_the_lanes_decrypted_in_memory(sshd, tmp_path, scratch):
    key = tmp_path / "rsa_pem"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "s3cret", "-f", str(key)],
        check=True,
    )
    sshd.authorize(SHELL_USER, (tmp_path / "rsa_pem.pub").read_text())
    local = make_file(tmp_path, 9 * MB + 3)
    before = logins(sshd)
    with SFTPDestination(key_only(sshd, key.read_text(), passphrase="s3cret")) as dest:
        dest.upload(local, "lanes/pem/big.mp4", lambda _n: None)
        assert dest.lanes_used == 2
        assert dest.verify(local, "lanes/pem/big.mp4")
    assert settled_logins(sshd, before + 3) == before + 3
    pool.close_all()  # the lanes were kept with the connection
    assert not list(scratch.glob("portal-lanes-*"))


def test_a_resume_that_falls_back_does_not_claim_what_it_then_sends_again(sshd, tmp_path, monkeypatch):
    size = 12 * MB
    local = make_file(tmp_path, size)
    folder = user_folder(sshd, "lanes/resume-fallback")
    temp = folder / ".big.mp4.part-0000abcd"
    temp.write_bytes(local.path.read_bytes()[: 4 * MB])
    os.chown(temp, *_owner(sshd))
    saved = Saved()
    saved.point.state = {"temp": str(temp), "lanes": [list(r) for r in lanes.split(0, size)]}
    monkeypatch.setattr(lanes, "ssh_client", lambda: "/bin/false")
    sent: list[int] = []
    with SFTPDestination(sshd.config()) as dest:
        dest.upload(local, "lanes/resume-fallback/big.mp4", sent.append, saved.point)
        assert dest.lanes_used == 0
    assert sha256_of(folder / "big.mp4") == local.sha256_hex()
    assert sum(sent) == size  # everything went again over paramiko ...
    assert not any("already there" in n for n in saved.notes)  # ... so the log must not say otherwise


# -- 9. the lanes share the file in segments and stay logged in ---------------------------
def _segments_by_lane(monkeypatch) -> dict[int, list[int]]:
    """Which ranges (by their first byte) each lane thread sent."""
    taken: dict[int, list[int]] = {}
    ends: dict[int, int] = {}
    real = lanes._splice

    def splice(src: int, pipe: int, count: int, offset: int) -> int:
        lane = threading.get_ident()
        if ends.get(lane) != offset or offset % lanes.SEGMENT == 0:
            taken.setdefault(lane, []).append(offset)
        sent = real(src, pipe, count, offset)
        ends[lane] = offset + sent
        return sent

    monkeypatch.setattr(lanes, "_splice", splice)
    return taken


def test_a_lane_that_stalls_leaves_the_segments_to_the_other(sshd, tmp_path, monkeypatch):
    monkeypatch.setattr(lanes, "SEGMENT", 2 * MB)
    taken = _segments_by_lane(monkeypatch)
    local = make_file(tmp_path, 24 * MB + 5)
    stalled: list[int] = []

    def stall_one(_n: int) -> None:
        if not stalled:  # both lanes are logged in: stop one ssh for a while
            proc = ssh_children()[0]
            stalled.append(proc.pid)
            proc.suspend()
            threading.Timer(1.5, proc.resume).start()

    with SFTPDestination(sshd.config()) as dest:
        dest.upload(local, "lanes/stall/big.mp4", stall_one)
        assert dest.lanes_used == 2
        assert dest.verify(local, "lanes/stall/big.mp4")
    counts = sorted(len(offsets) for offsets in taken.values())
    assert sum(counts) == 13  # every segment once
    assert counts[0] <= 2 < 11 <= counts[1], taken  # the running lane took the rest
    assert sorted(o for offsets in taken.values() for o in offsets) == list(range(0, 26 * MB, 2 * MB))
    assert sha256_of(sshd.upload_dir() / "lanes/stall/big.mp4") == local.sha256_hex()


@pytest.mark.parametrize("cls", KINDS, ids=KIND_IDS)
def test_the_next_big_file_rides_the_kept_lanes_without_logging_in(cls, sshd, tmp_path, scratch):
    local = make_file(tmp_path, BIG)
    other = make_file(tmp_path, 9 * MB + 7, name="other.mp4")
    before = logins(sshd)
    with cls(sshd.config()) as dest:
        dest.upload(local, f"lanes/kept-{cls.__name__}/a.mp4", lambda _n: None)
    assert settled_logins(sshd, before + 3) == before + 3
    assert pool.idle_count() == 1 and len(ssh_children()) == 2
    with cls(sshd.config()) as dest:  # another delivery in the same worker
        assert dest.reused
        dest.upload(other, f"lanes/kept-{cls.__name__}/b.mp4", lambda _n: None)
        assert dest.lanes_used == 2
        assert dest.verify(other, f"lanes/kept-{cls.__name__}/b.mp4")
    assert settled_logins(sshd, before + 3) == before + 3  # no login at all
    for path, source in (("a.mp4", local), ("b.mp4", other)):
        assert sha256_of(sshd.upload_dir() / f"lanes/kept-{cls.__name__}" / path) == source.sha256_hex()
    pool.close_all()
    assert no_ssh_child_within(2)
    assert not list(scratch.glob("portal-lanes-*"))


def test_kept_lanes_that_died_are_replaced_by_new_logins(sshd, tmp_path):
    local = make_file(tmp_path, BIG)
    before = logins(sshd)
    with SFTPDestination(sshd.config()) as dest:
        dest.upload(local, "lanes/died/a.mp4", lambda _n: None)
        kept = dest._lanes
        assert kept is not None and kept.reusable
        # The server ends the lanes' sessions (not the control connection's).
        for proc in psutil.Process(sshd.proc.pid).children(recursive=True):
            if any(f"{lanes.READY}" in part for part in proc.cmdline()):
                proc.kill()
        deadline = time.monotonic() + 5
        while any(p.poll() is None for p in kept.procs) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not kept.reusable
        dest.upload(local, "lanes/died/b.mp4", lambda _n: None)
        assert dest.lanes_used == 2 and dest._lanes is not kept
        assert dest.verify(local, "lanes/died/b.mp4")
    assert settled_logins(sshd, before + 5) == before + 5


def test_a_server_without_gnu_dd_gets_one_range_per_lane(sshd, tmp_path, monkeypatch, scratch):
    """POSIX dd cannot stop after a byte count on a pipe: each lane writes one
    range until its input ends, and the lanes end with the file."""
    gnu_check = "if dd if=/dev/null of=/dev/null iflag="
    assert gnu_check in lanes.LANE_SCRIPT
    monkeypatch.setattr(lanes, "LANE_SCRIPT", lanes.LANE_SCRIPT.replace(gnu_check, "if false && dd iflag=", 1))
    monkeypatch.setattr(lanes, "SEGMENT", 1024 * MB)  # a range is counted once
    taken = _segments_by_lane(monkeypatch)
    local = make_file(tmp_path, BIG)
    saved = Saved()
    with SFTPDestination(sshd.config()) as dest:
        dest.upload(local, "lanes/posix/big.mp4", lambda _n: None, saved.point)
        assert dest.lanes_used == 2 and dest._lanes is None
        assert dest.verify(local, "lanes/posix/big.mp4")
    assert saved.saves[0]["lanes"] == [list(r) for r in lanes.split(0, local.size)]
    assert sorted(len(offsets) for offsets in taken.values()) == [1, 1]
    assert sha256_of(sshd.upload_dir() / "lanes/posix/big.mp4") == local.sha256_hex()
    assert no_ssh_child_within(2)
    assert not list(scratch.glob("portal-lanes-*"))


def test_lane_logins_leave_out_the_slow_ntru_prime_key_exchange(sshd, tmp_path):
    with SFTPDestination(sshd.config()) as dest, lanes.Lanes(dest.transport, dest.config, dest.where) as running:
        argv, env = running._prepare()
        option = next(arg for arg in argv if arg.startswith("KexAlgorithms="))
        assert option == "KexAlgorithms=-sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com"
        # what this ssh then offers (it expands the "-" list itself)
        offered = subprocess.run([*argv[:-2], "-G", "x"], env=env, capture_output=True, text=True).stdout
        [line] = [line for line in offered.splitlines() if line.startswith("kexalgorithms ")]
        assert "sntrup" not in line and "curve25519-sha256" in line


def test_kept_lanes_that_do_not_answer_are_replaced(sshd, tmp_path, monkeypatch):
    monkeypatch.setattr(lanes, "REUSE_TIMEOUT", 0.5)
    local = make_file(tmp_path, BIG)
    with SFTPDestination(sshd.config()) as dest:
        dest.upload(local, "lanes/mute/a.mp4", lambda _n: None)
        kept = dest._lanes
        assert kept is not None and kept.reusable
        # Alive on our side, but the server's end of each lane is stuck.
        stuck = [
            proc
            for proc in psutil.Process(sshd.proc.pid).children(recursive=True)
            if any(lanes.READY in part for part in proc.cmdline())
        ]
        for proc in stuck:
            proc.suspend()
        try:
            dest.upload(local, "lanes/mute/b.mp4", lambda _n: None)
        finally:
            for proc in stuck:
                if proc.is_running():
                    proc.resume()
        assert dest.lanes_used == 2 and dest._lanes is not kept
        assert not kept.procs  # stopped
        assert dest.verify(local, "lanes/mute/b.mp4")


def test_lanes_log_in_when_big_files_are_expected_and_the_upload_takes_them(sshd, tmp_path):
    local = make_file(tmp_path, BIG)
    before = logins(sshd)
    with SFTPDestination(sshd.config()) as dest:
        dest.expect([1000, local.size])
        assert len(ssh_children()) == 2  # logging in before the upload asks
        starting = dest._lanes
        assert settled_logins(sshd, before + 3) == before + 3
        dest.upload(local, "lanes/expect/big.mp4", lambda _n: None)
        assert dest._lanes is starting and dest.lanes_used == 2
        assert dest.verify(local, "lanes/expect/big.mp4")
    assert settled_logins(sshd, before + 3) == before + 3
    assert sha256_of(sshd.upload_dir() / "lanes/expect/big.mp4") == local.sha256_hex()


def test_no_lanes_are_started_for_small_files_or_an_account_without_a_shell(sshd, tmp_path):
    with SFTPDestination(sshd.config()) as dest:
        dest.expect([lanes.MIN_SIZE - 1, 10])
        assert dest._lanes is None and not ssh_children()
    with SFTPDestination(sshd.config(NOSHELL_USER)) as dest:
        dest.expect([lanes.MIN_SIZE])
        assert dest._lanes is None and not ssh_children()


# -- 12. hostile names ------------------------------------------------------------------------
@pytest.mark.parametrize("cls", KINDS, ids=KIND_IDS)
def test_a_name_full_of_shell_syntax_is_only_ever_a_path_on_the_server(cls, sshd, tmp_path):
    local = make_file(tmp_path, BIG)
    name = "a b $(touch pwned) `touch pwned2`; touch pwned3 & 'x\" -of=y.mp4"
    with cls(sshd.config()) as dest:
        dest.upload(local, f"lanes/hostile/{name}", lambda _n: None)
        assert dest.lanes_used == 2
        assert dest.verify(local, f"lanes/hostile/{name}")
    folder = sshd.upload_dir() / "lanes/hostile"
    assert sorted(p.name for p in folder.iterdir()) == [name]
    assert (folder / name).read_bytes() == local.path.read_bytes()
    home = sshd.upload_dir().parent
    assert not [p for p in home.rglob("pwned*")]


def test_a_name_with_a_line_break_goes_over_paramiko_and_the_server_does_not_cool_off(sshd, tmp_path):
    local = make_file(tmp_path, BIG)
    with SFTPDestination(sshd.config()) as dest:
        dest.upload(local, "lanes/newline/a\nb.mp4", lambda _n: None)
        assert dest.lanes_used == 0
        assert not lanes.cooling(dest._pool_key)
        assert dest.verify(local, "lanes/newline/a\nb.mp4")
    assert (sshd.upload_dir() / "lanes/newline/a\nb.mp4").read_bytes() == local.path.read_bytes()
