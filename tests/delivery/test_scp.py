"""SCP destination against a real OpenSSH sshd (tests/servers/sshd.py).

Login, pinning and the form are shared with SFTP (delivery/destinations/ssh/)
and tested in depth in test_sftp.py; here each is checked once through SCP.
What every kind does (a wrong password, the egress guard, replacing a file,
restarting an interrupted copy and saying so) is in the contract
(tests/delivery/contract.py).
"""

from __future__ import annotations

import subprocess

import pytest

from delivery.destinations.base import LocalFile, ResumePoint, TransferError, UntrustedHostKey
from delivery.destinations.scp import (
    ATOMIC,
    PLAIN,
    READ_BACK,
    SIZE_ONLY,
    VERIFIED_REMOTELY,
    SCPDestination,
)
from delivery.destinations.ssh import SSHLoginForm, generate_keypair
from tests.delivery.test_sftp import MB, key_only, leftovers, make_file, sha256_of
from tests.servers import sshd as servers
from tests.servers.sshd import NOSHELL_USER, SHELL_USER

sshd_server = servers.sshd_server
sshd = servers.sshd


def deliver(config: dict, local: LocalFile, remote: str) -> SCPDestination:
    sent = []
    with SCPDestination(config) as dest:
        dest.upload(local, remote, sent.append)
        assert dest.verify(local, remote)
    assert sum(sent) == local.size
    return dest


def test_it_places_files_atomically_and_verifies_sha256_when_a_shell_is_allowed(sshd, tmp_path):
    """Where the file lands, intact and with no temporary left, is in the contract."""
    local = make_file(tmp_path, 2 * MB + 3)
    dest = deliver(sshd.config(), local, "room2/conf1/transcoded.mp4")
    assert dest.placement_mode == ATOMIC
    assert dest.last_verification == VERIFIED_REMOTELY


def test_it_uploads_with_a_key(sshd, tmp_path):
    local = make_file(tmp_path, 50_000)
    deliver(key_only(sshd, sshd.client_key.read_text()), local, "room2/key/a.mp4")
    assert sha256_of(sshd.upload_dir() / "room2/key/a.mp4") == local.sha256_hex()


def test_it_writes_plainly_and_creates_folders_without_a_shell(sshd, tmp_path):
    local = make_file(tmp_path, 300_000)
    dest = deliver(sshd.config(NOSHELL_USER), local, "room2/deep/er/a.mp4")
    assert dest.placement_mode == PLAIN
    assert dest.last_verification == SIZE_ONLY
    final = sshd.upload_dir(NOSHELL_USER) / "room2/deep/er/a.mp4"
    assert sha256_of(final) == local.sha256_hex()


def test_without_shell_or_sftp_it_verifies_by_reading_the_file_back(sshd, tmp_path):
    sshd.set_noshell_sftp(False)
    local = make_file(tmp_path, 700_000)
    dest = deliver(sshd.config(NOSHELL_USER), local, "room2/readback/a.mp4")
    assert dest.last_verification == READ_BACK
    with open(sshd.upload_dir(NOSHELL_USER) / "room2/readback/a.mp4", "r+b") as fh:
        fh.write(b"X")
    with SCPDestination(sshd.config(NOSHELL_USER)) as dest:
        assert not dest.verify(local, "room2/readback/a.mp4")


def test_it_rejects_a_wrong_key(sshd):
    private, _public = generate_keypair()
    with pytest.raises(TransferError) as err, SCPDestination(key_only(sshd, private)):
        pass
    assert err.value.permanent and err.value.message.endswith("(key rejected)")


def test_it_refuses_an_unknown_host_key(sshd):
    expected = subprocess.run(
        ["ssh-keygen", "-lf", str(sshd.host_key)], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    config = sshd.config()
    del config["pinned_fingerprint"]
    with pytest.raises(UntrustedHostKey) as err, SCPDestination(config):
        pass
    assert err.value.fingerprint == expected and err.value.pinned is None


def test_it_names_both_keys_when_the_host_key_changed(sshd):
    old = "SHA256:" + "A" * 43
    with pytest.raises(UntrustedHostKey) as err, SCPDestination(sshd.config(pinned_fingerprint=old)):
        pass
    assert old in err.value.message and sshd.fingerprint in err.value.message


@pytest.mark.parametrize("user", [SHELL_USER, NOSHELL_USER])
def test_it_reports_permission_denied_on_root_naming_the_folder(sshd, tmp_path, user):
    config = sshd.config(user, root=str(sshd.readonly_dir))
    with SCPDestination(config) as dest, pytest.raises(TransferError) as err:
        dest.upload(make_file(tmp_path, 10), "room2/conf1/a.mp4", lambda n: None)
    assert err.value.permanent
    assert "Permission denied" in err.value.message
    assert str(sshd.readonly_dir) in err.value.message


@pytest.mark.timeout(120)
def test_a_retry_after_sshd_restarts_mid_transfer_restarts_and_says_so(sshd, tmp_path):
    local = make_file(tmp_path, 48 * MB)
    folder = sshd.upload_dir() / "room2/cut"
    sent = [0]

    def restart_after_8mb(n: int) -> None:
        sent[0] += n
        if sent[0] >= 8 * MB and sent[0] - n < 8 * MB:
            sshd.restart()

    notes: list[str] = []
    point = ResumePoint(note=notes.append)
    with SCPDestination(sshd.config()) as dest, pytest.raises(TransferError) as err:
        dest.upload(local, "room2/cut/big.mp4", restart_after_8mb, point)
    assert not err.value.permanent
    assert not (folder / "big.mp4").exists()
    assert notes == []  # a first attempt has nothing to say

    again = []
    with SCPDestination(sshd.config()) as dest:
        dest.upload(local, "room2/cut/big.mp4", again.append, point)
        assert dest.verify(local, "room2/cut/big.mp4")
    # scp has no offset: the whole file again, and the delivery log says so
    assert sum(again) == local.size
    assert notes == ["SCP cannot resume: sending big.mp4 again from byte 0"]
    assert sha256_of(folder / "big.mp4") == local.sha256_hex()
    assert leftovers(folder) == []


@pytest.mark.parametrize("user, mode", [(SHELL_USER, ATOMIC), (NOSHELL_USER, PLAIN)])
def test_check_writes_and_removes_a_probe_and_reports_the_mode(sshd, user, mode):
    root = sshd.upload_dir(user) / "probe"
    with SCPDestination(sshd.config(user, root=str(root))) as dest:
        message = dest.check()
    assert "Wrote and removed a probe file" in message and mode in message
    assert list(root.iterdir()) == []


def test_scp_uses_the_shared_login_form():
    assert SCPDestination.form_class is SSHLoginForm
    assert SSHLoginForm.secret_fields == ("password", "private_key", "passphrase")

