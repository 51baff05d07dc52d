"""SFTP destination against a real OpenSSH sshd (tests/servers/sshd.py): what
is special to SFTP (keys, host key pinning, parallel channels, checkpoints,
accounts without a shell, the form). What every kind does is in the contract
(tests/delivery/contract.py)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from pathlib import Path
from unittest import mock

import paramiko
import pytest

from delivery.destinations.base import LocalFile, ResumePoint, TransferError, UntrustedHostKey
from delivery.destinations.sftp import (
    PARALLEL_MIN,
    SIZE_ONLY,
    STREAM_BLOCK,
    STREAMS,
    VERIFIED_REMOTELY,
    SFTPDestination,
    fit_requests,
)
from delivery.destinations.sftp.put import REQUEST_PACKETS, packets_per_request, server_write_limit
from delivery.destinations.ssh import SSHLoginForm, generate_keypair, load_private_key
from tests.servers import sshd as servers
from tests.servers.sshd import NOSHELL_USER, SHELL_USER, SSHServer

sshd_server = servers.sshd_server
sshd = servers.sshd

MB = 1024 * 1024


def make_file(tmp_path: Path, size: int, name: str = "transcoded.mp4") -> LocalFile:
    path = tmp_path / name
    with open(path, "wb") as fh:
        left = size
        while left:
            chunk = os.urandom(min(left, MB))
            fh.write(chunk)
            left -= len(chunk)
    return LocalFile(path, size)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(MB):
            digest.update(chunk)
    return digest.hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part-" in p.name)


def deliver(config: dict, local: LocalFile, remote: str) -> SFTPDestination:
    sent = []
    with SFTPDestination(config) as dest:
        dest.upload(local, remote, sent.append)
        assert dest.verify(local, remote)
    assert sum(sent) == local.size
    return dest


def key_only(server: SSHServer, key_text: str, user: str = SHELL_USER, **extra) -> dict:
    config = server.config(user, private_key=key_text, **extra)
    del config["password"]
    return config


def test_it_verifies_sha256_remotely_when_the_account_has_a_shell(sshd, tmp_path):
    """Upload with a password, placement and verify are in the contract."""
    local = make_file(tmp_path, 3 * MB + 17)
    dest = deliver(sshd.config(), local, "room1/conf1/transcoded.mp4")
    assert dest.last_verification == VERIFIED_REMOTELY


def test_it_uploads_with_the_openssh_private_key(sshd, tmp_path):
    local = make_file(tmp_path, 100_000)
    deliver(key_only(sshd, sshd.client_key.read_text()), local, "room1/key/a.mp4")
    assert sha256_of(sshd.upload_dir() / "room1/key/a.mp4") == local.sha256_hex()


def test_it_logs_in_with_a_generated_keypair(sshd, tmp_path):
    private, public = generate_keypair()
    assert public.startswith("ssh-ed25519 ") and "PRIVATE" not in public
    sshd.authorize(SHELL_USER, public)
    local = make_file(tmp_path, 1000)
    deliver(key_only(sshd, private), local, "room1/generated/a.mp4")


def test_it_logs_in_with_an_encrypted_pem_rsa_key(sshd, tmp_path):
    key = tmp_path / "rsa_pem"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "s3cret", "-f", str(key)],
        check=True,
    )
    assert "BEGIN RSA PRIVATE KEY" in key.read_text()
    sshd.authorize(SHELL_USER, (tmp_path / "rsa_pem.pub").read_text())
    config = key_only(sshd, key.read_text(), passphrase="s3cret")
    deliver(config, make_file(tmp_path, 1000), "room1/pem/a.mp4")


def test_it_rejects_a_wrong_key(sshd):
    private, _public = generate_keypair()
    with pytest.raises(TransferError) as err, SFTPDestination(key_only(sshd, private)):
        pass
    assert err.value.permanent
    assert err.value.message.endswith(f"on 127.0.0.1:{sshd.port} (key rejected)")
    assert "PRIVATE" not in err.value.message


def test_it_refuses_an_unknown_host_key_and_shows_its_fingerprint(sshd):
    expected = subprocess.run(
        ["ssh-keygen", "-lf", str(sshd.host_key)], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    dest = SFTPDestination(sshd.config(pinned_fingerprint=""))
    with pytest.raises(UntrustedHostKey) as err:
        dest.open()
    assert err.value.permanent and err.value.pinned is None
    assert err.value.fingerprint == expected == dest.presented_fingerprint
    assert expected in err.value.message


def test_it_names_both_keys_when_the_host_key_changed(sshd, tmp_path):
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    old = subprocess.run(
        ["ssh-keygen", "-lf", str(other)], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    with pytest.raises(UntrustedHostKey) as err, SFTPDestination(sshd.config(pinned_fingerprint=old)):
        pass
    assert err.value.permanent
    assert err.value.pinned == old and err.value.fingerprint == sshd.fingerprint
    assert old in err.value.message and sshd.fingerprint in err.value.message


def test_it_reports_permission_denied_on_root_naming_the_folder(sshd, tmp_path):
    config = sshd.config(root=str(sshd.readonly_dir))
    with SFTPDestination(config) as dest, pytest.raises(TransferError) as err:
        dest.upload(make_file(tmp_path, 10), "room1/conf1/a.mp4", lambda n: None)
    assert err.value.permanent
    assert "Permission denied" in err.value.message
    assert str(sshd.readonly_dir) in err.value.message


@pytest.mark.timeout(120)
def test_a_retry_completes_after_the_connection_is_cut_mid_transfer(sshd, tmp_path):
    local = make_file(tmp_path, 48 * MB)
    folder = sshd.upload_dir() / "room1/cut"
    sent = [0]

    def cut_after_8mb(n: int) -> None:
        sent[0] += n
        if sent[0] >= 8 * MB:
            sshd.kill_connections()

    with SFTPDestination(sshd.config()) as dest, pytest.raises(TransferError) as err:
        dest.upload(local, "room1/cut/big.mp4", cut_after_8mb)
    assert not err.value.permanent
    assert "lost" in err.value.message
    assert not (folder / "big.mp4").exists()
    assert len(leftovers(folder)) == 1  # the cut connection could not clean up

    deliver(sshd.config(), local, "room1/cut/big.mp4")
    assert sha256_of(folder / "big.mp4") == local.sha256_hex()
    assert leftovers(folder) == []


def test_a_big_file_goes_over_several_channels_and_arrives_whole(sshd, tmp_path):
    local = make_file(tmp_path, PARALLEL_MIN + 3 * MB + 5)
    channels = []
    with SFTPDestination(sshd.config()) as dest:
        opened = paramiko.SFTPClient.from_transport
        with mock.patch.object(
            paramiko.SFTPClient,
            "from_transport",
            side_effect=lambda *a, **k: channels.append(1) or opened(*a, **k),
        ):
            sent = []
            dest.upload(local, "room1/par/big.mp4", sent.append)
        assert dest.verify(local, "room1/par/big.mp4")
    assert len(channels) == STREAMS - 1
    assert sum(sent) == local.size
    assert leftovers(sshd.upload_dir() / "room1/par") == []


def test_each_write_fits_one_ssh_packet_of_the_channel(sshd):
    with SFTPDestination(sshd.config()) as dest:
        with dest.sftp.open(str(sshd.upload_dir() / "fit.bin"), "wb") as fh:
            fit_requests(dest.sftp, fh)
            room = dest.sftp.get_channel().out_max_packet_size - 64
            assert 32_000 < fh.MAX_REQUEST_SIZE + 25 + len(fh.handle) <= room


def test_writes_span_several_whole_packets_up_to_the_servers_announced_limit(sshd):
    with SFTPDestination(sshd.config()) as dest:
        limit = server_write_limit(dest.sftp)
        assert limit == 255 * 1024  # OpenSSH's limits@openssh.com
        packets = packets_per_request(dest.sftp, REQUEST_PACKETS)
        assert packets == REQUEST_PACKETS
        with dest.sftp.open(str(sshd.upload_dir() / "fit7.bin"), "wb") as fh:
            fit_requests(dest.sftp, fh, packets)
            room = dest.sftp.get_channel().out_max_packet_size - 64
            assert fh.MAX_REQUEST_SIZE + 25 + len(fh.handle) == packets * room
            assert fh.MAX_REQUEST_SIZE <= limit
            fh.write(os.urandom(MB))  # the server takes writes of this size
        assert (sshd.upload_dir() / "fit7.bin").stat().st_size == MB


def test_a_progress_callback_that_raises_stops_every_channel(sshd, tmp_path):
    local = make_file(tmp_path, PARALLEL_MIN + MB)
    sent = [0]

    class LeaseLost(Exception):
        pass

    def stop_at_16mb(n: int) -> None:
        sent[0] += n
        if sent[0] >= 16 * MB:
            raise LeaseLost

    with SFTPDestination(sshd.config()) as dest, pytest.raises(LeaseLost):
        dest.upload(local, "room1/stop/big.mp4", stop_at_16mb)
    assert [t.name for t in threading.enumerate() if "_work" in t.name] == []
    assert not (sshd.upload_dir() / "room1/stop/big.mp4").exists()


def test_it_verifies_size_only_when_the_account_has_no_shell(sshd, tmp_path):
    local = make_file(tmp_path, 200_000)
    dest = deliver(sshd.config(NOSHELL_USER), local, "room1/noshell/a.mp4")
    assert dest.last_verification == SIZE_ONLY
    assert sha256_of(sshd.upload_dir(NOSHELL_USER) / "room1/noshell/a.mp4") == local.sha256_hex()


# -- the form -------------------------------------------------------------------------
FORM_DATA = {"host": " sftp.example.com ", "port": "22", "username": "rec", "root": "/srv/rec/"}


def test_the_form_needs_a_password_or_a_key():
    form = SSHLoginForm(data=FORM_DATA)
    assert not form.is_valid()
    assert "password or a private key" in str(form.errors)


def test_the_form_accepts_a_stored_password_on_edit():
    form = SSHLoginForm(data=FORM_DATA, stored_secrets=frozenset({"password"}))
    assert form.is_valid(), form.errors
    public, secrets = form.split()
    assert public["root"] == "/srv/rec" and public["host"] == "sftp.example.com"
    assert secrets == {}


def test_the_form_rejects_a_key_that_does_not_parse():
    form = SSHLoginForm(data={**FORM_DATA, "private_key": "ssh-ed25519 AAAA not a private key"})
    assert not form.is_valid()
    assert "Not a private key" in str(form.errors["private_key"])


def test_the_form_asks_for_the_passphrase_of_an_encrypted_key(tmp_path):
    key = tmp_path / "enc"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "pp", "-f", str(key)], check=True)
    form = SSHLoginForm(data={**FORM_DATA, "private_key": key.read_text()})
    assert not form.is_valid()
    assert "give its passphrase" in str(form.errors["private_key"])
    form = SSHLoginForm(data={**FORM_DATA, "private_key": key.read_text(), "passphrase": "pp"})
    assert form.is_valid(), form.errors
    assert set(form.split()[1]) == {"private_key", "passphrase"}


def test_the_form_never_renders_a_secret_back():
    private, _public = generate_keypair()
    form = SSHLoginForm(data={**FORM_DATA, "password": "hunter2", "private_key": private})
    form.is_valid()
    html = str(form)
    assert "hunter2" not in html and "PRIVATE KEY" not in html


def test_a_generated_key_loads_and_matches_its_public_line():
    private, public = generate_keypair()
    key = load_private_key(private)
    assert public.split()[1] == key.get_base64()


class Saved:
    """A ResumePoint whose saves and notes are kept, as the engine keeps them on the row."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.saves: list[dict] = []
        self.point = ResumePoint(save=self.saves.append, note=self.notes.append)


@pytest.mark.timeout(180)
def test_a_cut_parallel_upload_resumes_from_the_acknowledged_offset(sshd, tmp_path):
    size = 48 * MB + 12345
    local = make_file(tmp_path, size)
    folder = sshd.upload_dir() / "room1/resume"
    saved = Saved()
    first = [0]

    def cut_after_24mb(n: int) -> None:
        first[0] += n
        if first[0] >= 24 * MB:
            sshd.kill_connections()

    with SFTPDestination(sshd.config()) as dest, pytest.raises(TransferError) as err:
        dest.upload(local, "room1/resume/big.mp4", cut_after_24mb, saved.point)
    assert not err.value.permanent
    state = saved.point.state
    [partial] = leftovers(folder)
    assert state["temp"].endswith(partial)
    offset = state["offset"]
    assert offset % STREAM_BLOCK == 0 and 0 < offset <= (folder / partial).stat().st_size
    # sent again: at most what was in flight past the acknowledged prefix, one 16 MiB part
    assert first[0] - offset <= STREAMS * STREAM_BLOCK

    second = []
    with SFTPDestination(sshd.config()) as dest:
        dest.upload(local, "room1/resume/big.mp4", second.append, saved.point)
        assert dest.verify(local, "room1/resume/big.mp4")
    assert sum(second) == size - offset  # only the rest went
    assert f"resuming {folder / 'big.mp4'} at byte {offset} of {size}" in saved.notes
    assert sha256_of(folder / "big.mp4") == local.sha256_hex()
    assert leftovers(folder) == []


def test_a_stopped_single_stream_upload_resumes_after_its_last_checkpoint(sshd, tmp_path):
    local = make_file(tmp_path, 12 * MB + 7)
    folder = sshd.upload_dir() / "room1/resume1"
    saved = Saved()

    class LeaseLost(Exception):
        pass

    def stop_at_9mb(n: int, sent=[0]) -> None:  # noqa: B006 - a counter for this test
        sent[0] += n
        if sent[0] >= 9 * MB:
            raise LeaseLost

    with SFTPDestination(sshd.config()) as dest, pytest.raises(LeaseLost):
        dest.upload(local, "room1/resume1/a.mp4", stop_at_9mb, saved.point)
    assert saved.point.state["offset"] == 8 * MB  # checkpoints every 4 MiB, acknowledged
    assert [s["offset"] for s in saved.saves] == [0, 4 * MB, 8 * MB]
    assert len(leftovers(folder)) == 1  # kept for the next run

    second = []
    with SFTPDestination(sshd.config()) as dest:
        dest.upload(local, "room1/resume1/a.mp4", second.append, saved.point)
    assert sum(second) == local.size - 8 * MB
    assert sha256_of(folder / "a.mp4") == local.sha256_hex()
    assert leftovers(folder) == []


def test_a_recorded_partial_file_that_is_gone_or_short_is_sent_from_byte_0(sshd, tmp_path):
    local = make_file(tmp_path, 6 * MB)
    folder = sshd.upload_dir() / "room1/resume2"
    temp = str(folder / ".a.mp4.part-0000beef")
    for state, why in (
        ({"temp": temp, "offset": 4 * MB}, "is gone"),
        ({"temp": temp, "offset": 4 * MB}, "is shorter than recorded"),
    ):
        saved = Saved()
        saved.point.state = state
        sent = []
        with SFTPDestination(sshd.config()) as dest:
            if why.startswith("is shorter"):
                with dest.sftp.open(temp, "wb") as fh:
                    fh.write(b"x" * MB)
            dest.upload(local, "room1/resume2/a.mp4", sent.append, saved.point)
        assert sum(sent) == local.size
        assert any(why in note for note in saved.notes)
        assert sha256_of(folder / "a.mp4") == local.sha256_hex()
        assert leftovers(folder) == []
