"""SSH connections kept for the worker's next delivery (delivery/destinations/ssh/pool.py),
against the real OpenSSH sshd of tests/servers/sshd.py. Logins are counted in
sshd's own log ("Accepted password for ...")."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from delivery.destinations.base import LocalFile, TransferError, UntrustedHostKey
from delivery.destinations.scp import SCPDestination
from delivery.destinations.sftp import SFTPDestination
from delivery.destinations.ssh import pool
from tests.servers import sshd as servers
from tests.servers.sshd import NOSHELL_USER, SSHServer

sshd_server = servers.sshd_server
sshd = servers.sshd

KINDS = [SFTPDestination, SCPDestination]


def logins(server: SSHServer) -> int:
    return (server.workdir / "sshd.log").read_text().count("Accepted password for")


def small_file(tmp_path: Path, name: str = "chat.json") -> LocalFile:
    path = tmp_path / name
    path.write_bytes(os.urandom(64 * 1024))
    return LocalFile(path, path.stat().st_size)


def deliver(cls, config: dict, local: LocalFile, remote: str):
    with cls(config) as dest:
        dest.upload(local, remote, lambda _n: None)
        assert dest.verify(local, remote)
    return dest


def wait_for_logins(server: SSHServer, count: int) -> int:
    # sshd writes its log line a moment after the client sees the login succeed.
    deadline = time.monotonic() + 5
    while logins(server) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return logins(server)


@pytest.mark.parametrize("cls", KINDS, ids=["sftp", "scp"])
def test_the_next_delivery_to_the_same_server_reuses_the_login(cls, sshd: SSHServer, tmp_path):
    local = small_file(tmp_path)
    before = logins(sshd)
    first = deliver(cls, sshd.config(), local, "room/c1/chat.json")
    assert wait_for_logins(sshd, before + 1) == before + 1
    assert pool.idle_count() == 1
    second = deliver(cls, sshd.config(), local, "room/c2/chat.json")
    third = deliver(cls, sshd.config(), local, "room/c3/chat.json")
    time.sleep(0.2)
    assert logins(sshd) == before + 1  # one login for three deliveries
    assert (first.reused, second.reused, third.reused) == (False, True, True)
    assert second.presented_fingerprint == sshd.fingerprint
    for conf in ("c1", "c2", "c3"):
        assert (sshd.upload_dir() / "room" / conf / "chat.json").read_bytes() == local.path.read_bytes()


def test_sftp_and_scp_to_the_same_login_share_it(sshd: SSHServer, tmp_path):
    local = small_file(tmp_path)
    before = logins(sshd)
    deliver(SFTPDestination, sshd.config(), local, "a/chat.json")
    assert deliver(SCPDestination, sshd.config(), local, "b/chat.json").reused
    time.sleep(0.2)
    assert logins(sshd) == before + 1


def test_a_wrong_password_never_rides_a_kept_connection(sshd: SSHServer, tmp_path):
    local = small_file(tmp_path)
    deliver(SFTPDestination, sshd.config(), local, "room/c1/chat.json")
    assert pool.idle_count() == 1
    with pytest.raises(TransferError) as failed:
        with SFTPDestination(sshd.config(password="not-the-password")) as dest:
            dest.upload(local, "refused/c2/chat.json", lambda _n: None)
    assert "SSH login failed" in failed.value.message
    assert not (sshd.upload_dir() / "refused").exists()
    assert pool.idle_count() == 1  # the good login is still kept, for its own key


def test_a_changed_pin_is_checked_on_a_new_connection(sshd: SSHServer, tmp_path):
    deliver(SFTPDestination, sshd.config(), small_file(tmp_path), "room/c1/chat.json")
    other = "SHA256:" + "A" * 43
    with pytest.raises(UntrustedHostKey) as refused:
        SFTPDestination(sshd.config(pinned_fingerprint=other)).open()
    assert refused.value.fingerprint == sshd.fingerprint


def test_another_user_gets_its_own_connection(sshd: SSHServer, tmp_path):
    local = small_file(tmp_path)
    deliver(SFTPDestination, sshd.config(), local, "room/c1/chat.json")
    dest = deliver(SFTPDestination, sshd.config(NOSHELL_USER), local, "room/c1/chat.json")
    assert not dest.reused
    assert (sshd.upload_dir(NOSHELL_USER) / "room" / "c1" / "chat.json").exists()
    assert pool.idle_count() == 2


@pytest.mark.parametrize("cls", KINDS, ids=["sftp", "scp"])
def test_a_connection_the_server_dropped_while_kept_is_replaced(cls, sshd: SSHServer, tmp_path):
    local = small_file(tmp_path)
    before = logins(sshd)
    deliver(cls, sshd.config(), local, "room/c1/chat.json")
    sshd.kill_connections()  # as a server restart or an idle timeout would
    dest = deliver(cls, sshd.config(), local, "room/c2/chat.json")
    assert not dest.reused
    assert wait_for_logins(sshd, before + 2) == before + 2
    assert (sshd.upload_dir() / "room" / "c2" / "chat.json").exists()


def test_a_connection_whose_work_failed_is_closed_not_kept(sshd: SSHServer, tmp_path):
    with pytest.raises(RuntimeError):
        with SFTPDestination(sshd.config()) as dest:
            transport = dest.transport
            raise RuntimeError("the delivery failed half-way")
    assert pool.idle_count() == 0
    assert transport is not None and not transport.is_active()


def test_two_deliveries_at_once_never_share_a_connection(sshd: SSHServer, tmp_path):
    deliver(SFTPDestination, sshd.config(), small_file(tmp_path), "room/c1/chat.json")
    first, second = SFTPDestination(sshd.config()), SFTPDestination(sshd.config())
    first.open()
    second.open()
    try:
        assert first.reused and not second.reused
        assert first.transport is not second.transport
    finally:
        first.close()
        second.close()
    assert pool.idle_count() == 2


def test_idle_connections_are_closed_after_a_while(sshd: SSHServer, tmp_path, monkeypatch):
    monkeypatch.setattr(pool, "IDLE_SECONDS", 0.2)
    with SFTPDestination(sshd.config()) as dest:
        transport = dest.transport
    assert pool.idle_count() == 1
    deadline = time.monotonic() + 5
    while pool.idle_count() and time.monotonic() < deadline:
        time.sleep(0.05)  # the sweep runs on its own, with no further delivery
    assert pool.idle_count() == 0
    assert transport is not None and not transport.is_active()


def test_at_most_max_idle_connections_are_kept(sshd: SSHServer, monkeypatch):
    monkeypatch.setattr(pool, "MAX_IDLE", 1)
    with SFTPDestination(sshd.config()) as dest:
        oldest = dest.transport
    with SFTPDestination(sshd.config(NOSHELL_USER)):
        pass
    assert pool.idle_count() == 1
    assert oldest is not None and not oldest.is_active()


def test_keys_hold_no_secret(sshd: SSHServer):
    config = sshd.config()
    key = pool.pool_key(config)
    assert config["password"] not in key
    assert key != pool.pool_key({**config, "password": config["password"] + "x"})


def test_a_forked_worker_starts_with_an_empty_pool(sshd: SSHServer):
    with SFTPDestination(sshd.config()):
        pass
    assert pool.idle_count() == 1
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, str(pool.idle_count()).encode())
        os._exit(0)
    os.close(write)
    assert os.read(read, 10) == b"0"
    os.waitpid(pid, 0)
    os.close(read)
    assert pool.idle_count() == 1  # the parent's connection is untouched
    with SFTPDestination(sshd.config()) as dest:
        assert dest.reused and dest.connected


def test_ssh_sockets_send_without_nagle_delay(sshd: SSHServer):
    """Without TCP_NODELAY each remote command waited ~40 ms for the server's
    delayed ACK (bench/README.md, small deliveries over SSH)."""
    with SFTPDestination(sshd.config()) as dest:
        assert dest.transport is not None
        sock = dest.transport.sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)



def test_one_sweeper_thread_however_many_deliveries(sshd: SSHServer, tmp_path, monkeypatch):
    import threading

    monkeypatch.setattr(pool, "IDLE_SECONDS", 0.3)
    local = small_file(tmp_path)
    for index in range(5):
        deliver(SFTPDestination, sshd.config(), local, f"sweeper/c{index}/chat.json")
    sweepers = [t for t in threading.enumerate() if t.name == "ssh-pool-sweeper"]
    assert len(sweepers) == 1
    sweepers[0].join(timeout=5)  # it ends once nothing is kept
    assert not sweepers[0].is_alive() and pool.idle_count() == 0
