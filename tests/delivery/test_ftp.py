"""FTP and FTPS destination against pyftpdlib (tests/servers/ftp.py): what is
special to FTP (active mode, REST resume, TLS certificate pinning, PASV
replies). What every kind does is in the contract (tests/delivery/contract.py)."""

import base64
import hashlib
import os
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from delivery.destinations import destination_for
from delivery.destinations.base import (
    CoolOff,
    LocalFile,
    ResumePoint,
    TransferError,
    UntrustedHostKey,
)
from delivery.destinations.ftp import FTPDestination, FTPForm, tls_certificate_fingerprint
from tests.servers import ftp as servers
from tests.servers.ftp import FTP_PASSWORD, READONLY, FTPServer
from tests.servers.listener import RecordingListener

# Assigned rather than imported by name: ruff reports fixture parameters that
# shadow an imported name (F811).
ftp_server = servers.ftp_server
ftps_server = servers.ftps_server
lying_pasv_ftp_server = servers.lying_pasv_ftp_server


def make_file(path: Path, size: int) -> LocalFile:
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        left = size
        while left:
            chunk = os.urandom(min(left, 1024 * 1024))
            fh.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return LocalFile(path=path, size=size, sha256=digest.hexdigest())


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def visible_leftovers(folder: Path) -> list[str]:
    return sorted(
        p.name for p in folder.rglob("*") if p.name.endswith(".part") or "probe" in p.name
    )


class Progress:
    def __init__(self, on_block=None):
        self.total = 0
        self.calls = 0
        self.on_block = on_block

    def __call__(self, sent: int) -> None:
        self.total += sent
        self.calls += 1
        if self.on_block:
            self.on_block(self.total)


def test_progress_is_reported_per_1_mib_block(ftp_server: FTPServer, tmp_path):
    """Upload, rename into place and verify are in the contract."""
    local = make_file(tmp_path / "transcoded.mp4", 3 * 1024 * 1024 + 17)
    progress = Progress()
    with destination_for("ftp", ftp_server.config(root="plain/deliveries")) as dest:
        dest.upload(local, "room1/conf1/transcoded.mp4", progress)
    assert progress.total == local.size
    assert progress.calls == 4  # 1 MiB blocks


def test_it_works_in_active_mode(ftp_server: FTPServer, tmp_path):
    local = make_file(tmp_path / "meta.json", 4096)
    with destination_for("ftp", ftp_server.config(root="active", passive=False)) as dest:
        dest.upload(local, "r/c/meta.json", Progress())
        assert dest.verify(local, "r/c/meta.json")


def test_permission_denied_on_root_is_permanent_and_names_the_folder(
    ftp_server: FTPServer, tmp_path
):
    local = make_file(tmp_path / "x.bin", 10)
    with destination_for("ftp", ftp_server.config(root=READONLY)) as dest:
        with pytest.raises(TransferError) as checked:
            dest.check()
        with pytest.raises(TransferError) as uploaded:
            dest.upload(local, "room/conf/x.bin", Progress())
    assert checked.value.permanent and uploaded.value.permanent
    assert checked.value.message.startswith("550 ")
    assert f"folder /{READONLY} " in checked.value.message
    assert f"folder /{READONLY}/room " in uploaded.value.message
    assert FTP_PASSWORD not in checked.value.message + uploaded.value.message


def test_a_cut_upload_resumes_with_rest_and_ends_intact(ftp_server: FTPServer, tmp_path):
    size = 40 * 1024 * 1024
    local = make_file(tmp_path / "big.mp4", size)
    dest = destination_for("ftp", ftp_server.config(root="resume"))

    def kill_midway(total: int) -> None:
        if total >= 16 * 1024 * 1024 and ftp_server.proc and ftp_server.proc.poll() is None:
            ftp_server.kill()

    try:
        with pytest.raises(TransferError) as info:
            dest.upload(local, "r/c/big.mp4", Progress(kill_midway))
        assert not info.value.permanent
        assert "lost while uploading /resume/r/c/.big.mp4.part" in info.value.message
    finally:
        ftp_server.restart()
    partial = ftp_server.read("resume/r/c/.big.mp4.part").stat().st_size
    assert 0 < partial < size
    assert not ftp_server.read("resume/r/c/big.mp4").exists()

    progress = Progress()
    notes: list[str] = []
    saves: list[dict] = []
    with dest:  # the same instance reconnects
        dest.upload(local, "r/c/big.mp4", progress, ResumePoint(save=saves.append, note=notes.append))
        assert dest.verify(local, "r/c/big.mp4")
    assert progress.total == size - partial  # only the missing part was sent
    assert saves == [{"temp": "/resume/r/c/.big.mp4.part"}]
    assert notes == [f"continuing .big.mp4.part at byte {partial} of {size}"]
    assert sha256_of(ftp_server.read("resume/r/c/big.mp4")) == local.sha256
    assert visible_leftovers(ftp_server.read("resume")) == []


def test_discard_removes_the_temporary_file_of_a_half_sent_upload(ftp_server: FTPServer):
    folder = ftp_server.read("gone/r/c")
    folder.mkdir(parents=True)
    (folder / ".v.mp4.part").write_bytes(os.urandom(100_000))
    (folder / "other.mp4").write_bytes(b"kept")
    with destination_for("ftp", ftp_server.config(root="gone")) as dest:
        dest.discard("r/c/v.mp4", {"temp": "/gone/r/c/other.mp4"})  # the state is not trusted
    assert sorted(p.name for p in folder.iterdir()) == ["other.mp4"]


def test_a_partial_file_of_other_content_is_not_resumed(ftp_server: FTPServer, tmp_path):
    local = make_file(tmp_path / "v.mp4", 300_000)
    folder = ftp_server.read("stale/r/c")
    folder.mkdir(parents=True)
    (folder / ".v.mp4.part").write_bytes(os.urandom(100_000))
    progress = Progress()
    with destination_for("ftp", ftp_server.config(root="stale")) as dest:
        dest.upload(local, "r/c/v.mp4", progress)
    assert progress.total == local.size
    assert sha256_of(folder / "v.mp4") == local.sha256


def test_ftps_refuses_an_unknown_certificate_and_names_its_fingerprint(ftps_server: FTPServer):
    with pytest.raises(UntrustedHostKey) as info:
        with destination_for("ftp", ftps_server.config()):
            pass
    assert info.value.permanent
    assert info.value.fingerprint == ftps_server.fingerprint
    assert info.value.pinned is None
    assert ftps_server.fingerprint in info.value.message
    assert "TLS certificate" in info.value.message
    assert tls_certificate_fingerprint("127.0.0.1", ftps_server.port) == ftps_server.fingerprint


def test_ftps_uploads_once_the_certificate_is_pinned(ftps_server: FTPServer, tmp_path):
    local = make_file(tmp_path / "rec.mp4", 2 * 1024 * 1024 + 5)
    config = ftps_server.config(root="secure", pinned_fingerprint=ftps_server.fingerprint)
    dest = FTPDestination(config)
    with dest:
        assert dest.presented_fingerprint == ftps_server.fingerprint
        dest.check()
        dest.upload(local, "r/c/rec.mp4", Progress())
        assert dest.verify(local, "r/c/rec.mp4")
        assert dest.describe() == f"ftps://rec@127.0.0.1:{ftps_server.port}/secure"
    assert sha256_of(ftps_server.read("secure/r/c/rec.mp4")) == local.sha256
    assert visible_leftovers(ftps_server.read("secure")) == []


def test_ftps_reports_a_changed_certificate_with_both_fingerprints(ftps_server: FTPServer):
    old = "SHA256:" + base64.b64encode(hashlib.sha256(b"old cert").digest()).decode().rstrip("=")
    with pytest.raises(UntrustedHostKey) as info:
        with destination_for("ftp", ftps_server.config(pinned_fingerprint=old)):
            pass
    assert info.value.pinned == old
    assert info.value.fingerprint == ftps_server.fingerprint
    assert old in info.value.message and ftps_server.fingerprint in info.value.message


def test_plain_ftp_to_a_tls_only_server_fails_permanently(ftps_server: FTPServer):
    with pytest.raises(TransferError) as info:
        with destination_for("ftp", ftps_server.config(tls="none")):
            pass
    assert info.value.permanent
    assert info.value.message.endswith("; choose explicit FTPS")
    assert FTP_PASSWORD not in info.value.message


def test_the_form_keeps_the_password_write_only():
    form = FTPForm(
        data={
            "host": "ftp.example.com",
            "port": "21",
            "username": "rec",
            "password": "pw",
            "passive": "on",
            "tls": "explicit",
            "root": "/recordings/",
        }
    )
    assert form.is_valid(), form.errors
    public, secrets = form.split()
    assert secrets == {"password": "pw"}
    assert public["root"] == "recordings" and public["passive"] is True
    assert "pw" not in str(FTPForm(initial={"password": "pw"})["password"])
    bad = FTPForm(
        data={"host": "ftp://x", "port": "21", "username": "u", "password": "p", "tls": "none"}
    )
    assert "host" in bad.errors


def test_a_server_that_never_answers_times_out_as_transient():
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts TCP connections but never sends a banner
        port = silent.getsockname()[1]
        dest = destination_for("ftp", {"host": "127.0.0.1", "port": port, "username": "rec"})
        dest.timeout = 0.3
        with pytest.raises(TransferError) as info:
            dest.open()
    assert not info.value.permanent
    assert info.value.message == f"Timed out while opening the FTP session on 127.0.0.1:{port}"


# -- the egress guard --------------------------------------------------------------------------


def test_a_delivery_to_a_refused_address_fails_permanently_with_the_guards_words(
    world, ftp_server: FTPServer, settings
):
    from delivery import engine, scheduling
    from delivery.models import Delivery, DeliveryDestination
    from tests.delivery.engine_support import make_session

    session = make_session(world.project, {"chat.json": ("chat", b"{}\n")})
    DeliveryDestination.objects.create(
        project=world.project, name="ftp", kind="ftp", file_types=["chat"],
        config={k: v for k, v in ftp_server.config().items() if k != "password"},
        secrets={"password": ftp_server.password},
    )  # fmt: skip
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = Delivery.objects.get()
    engine.run_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.FAILED and delivery.attempts == 1
    assert delivery.last_error.startswith("127.0.0.1 is a loopback address: the portal only")


def test_a_pasv_reply_naming_another_address_does_not_move_the_data_connection(
    lying_pasv_ftp_server: FTPServer, tmp_path
):
    """The server's PASV replies say 127.0.0.3; the data connections still go
    to the address the control connection was vetted and made to."""
    with RecordingListener("127.0.0.3") as elsewhere:
        local = make_file(tmp_path / "a.bin", 1000)
        with destination_for("ftp", lying_pasv_ftp_server.config()) as dest:
            dest.upload(local, "room/conf/a.bin", lambda n: None)
            assert dest.verify(local, "room/conf/a.bin")
        assert elsewhere.accepted == []
    assert (lying_pasv_ftp_server.home / "room/conf/a.bin").read_bytes() == local.path.read_bytes()


@pytest.mark.django_db(transaction=True)
def test_a_delivery_that_gives_up_removes_its_temporary_file(world, ftp_server: FTPServer):
    from django.utils import timezone

    from delivery import engine, scheduling
    from delivery.models import DeliveredFile, Delivery, DeliveryDestination
    from tests.delivery.engine_support import make_session

    session = make_session(world.project, {"cam.webm": ("individual", 300_000)})
    config = ftp_server.config(root="giveup")
    DeliveryDestination.objects.create(
        project=world.project, name="ftp", kind="ftp", file_types=["individual"],
        config={k: v for k, v in config.items() if k != "password"},
        secrets={"password": config["password"]},
    )  # fmt: skip
    scheduling.schedule_deliveries_for_session(session.pk)
    folder = ftp_server.read(f"giveup/{session.room.room_id}/{session.conf_num}")
    folder.mkdir(parents=True)
    (folder / ".cam.webm.part").write_bytes(os.urandom(100_000))  # what a killed run left
    DeliveredFile.objects.update(resume_state={"temp": f"/{folder.relative_to(ftp_server.home)}/.cam.webm.part"})
    session.files.update(expired_at=timezone.now())  # a permanent error: retention removed it

    assert engine.run_delivery(Delivery.objects.get().pk) == "failed"
    assert list(folder.iterdir()) == []
    assert DeliveredFile.objects.get().resume_state == {}


def test_tls_contexts_are_made_once_per_process():
    """Making an SSLContext loads the CA bundle (~20 ms); an FTPS delivery to a
    pinned server needed two, every time (bench/README.md, small deliveries)."""
    from delivery.destinations.ftp.connection import unverified_context, verified_context

    assert verified_context() is verified_context()
    assert unverified_context() is unverified_context()
    assert verified_context() is not unverified_context()
    assert verified_context().verify_mode == ssl.CERT_REQUIRED and verified_context().check_hostname
    assert unverified_context().verify_mode == ssl.CERT_NONE


# -- big files over lanes (delivery/destinations/ftp/lanes.py) ---------------------------------

MiB = 1024 * 1024
# Lanes from 8 MiB up here (64 MiB in production): small files, the same code.
LANES_FROM = 8 * MiB


@pytest.fixture(autouse=True)
def no_server_cooling_off(monkeypatch):
    from delivery.destinations.ftp import lanes

    monkeypatch.setattr(lanes, "_cooling", CoolOff())  # each test's servers are new


@pytest.fixture
def lanes_from_8_mib(monkeypatch):
    from delivery.destinations.ftp import lanes

    monkeypatch.setattr(lanes, "MIN_SIZE", LANES_FROM)


@pytest.fixture(scope="module", params=["ftp", "ftps"])
def lanes_server(request, tmp_path_factory) -> Iterator[FTPServer]:
    """One process per session, REST past the end of a file as vsftpd allows."""
    tls = request.param == "ftps"
    server = servers._start_server(
        tmp_path_factory.mktemp(f"{request.param}-lanes"), tls=tls, multiprocess=True, rest_past_end=True
    )
    yield server
    server.kill()


def lanes_config(server: FTPServer, **overrides):
    if server.tls:
        overrides.setdefault("pinned_fingerprint", server.fingerprint)
    return server.config(**overrides)


@pytest.mark.usefixtures("lanes_from_8_mib")
def test_a_big_file_goes_over_two_more_sessions_and_arrives_intact(lanes_server: FTPServer, tmp_path):
    local = make_file(tmp_path / "big.mp4", 20 * MiB + 17)
    progress = Progress()
    saves: list[dict] = []
    with destination_for("ftp", lanes_config(lanes_server, root="lanes")) as dest:
        before = lanes_server.logins()
        dest.upload(local, "r/c/big.mp4", progress, ResumePoint(save=saves.append))
        logins = lanes_server.logins() - before
        assert dest.verify(local, "r/c/big.mp4")
        assert dest.lanes_used == 2
        assert dest.log_notes() == [("lanes", "1 big file went over 2 FTP sessions at once")]
    assert logins == 2
    assert progress.total == local.size and progress.calls == 21  # 1 MiB blocks of both lanes
    assert saves[0] == {
        "temp": "/lanes/r/c/.big.mp4.part",
        "lanes": [[0, 11 * MiB], [11 * MiB, local.size]],
        "sent": [0, 11 * MiB],
    }
    assert sha256_of(lanes_server.read("lanes/r/c/big.mp4")) == local.sha256
    assert visible_leftovers(lanes_server.read("lanes")) == []


@pytest.mark.usefixtures("lanes_from_8_mib")
def test_files_under_the_lanes_size_go_over_one_session(lanes_server: FTPServer, tmp_path):
    local = make_file(tmp_path / "small.mp4", LANES_FROM - 1)
    with destination_for("ftp", lanes_config(lanes_server, root="small")) as dest:
        before = lanes_server.logins()
        dest.upload(local, "r/c/small.mp4", Progress())
        assert lanes_server.logins() == before and dest.lanes_used == 0
    assert sha256_of(lanes_server.read("small/r/c/small.mp4")) == local.sha256


@pytest.mark.usefixtures("lanes_from_8_mib")
def test_a_server_that_refuses_rest_past_the_end_gets_big_files_over_one_session(
    ftp_server: FTPServer, tmp_path, caplog
):
    """pyftpdlib as it comes answers 554 to a STOR after a REST past the end
    of the file, as ProFTPD does: nothing goes over lanes, one warning, and
    lanes are not tried again for that server for a while."""
    first = make_file(tmp_path / "a.mp4", LANES_FROM + 3)
    second = make_file(tmp_path / "b.mp4", LANES_FROM + 5)
    progress = Progress()
    with destination_for("ftp", ftp_server.config(root="norest")) as dest:
        dest.upload(first, "r/c/a.mp4", progress)
        assert dest.lanes_used == 0
        before = ftp_server.logins()
        dest.upload(second, "r/c/b.mp4", Progress())
        assert ftp_server.logins() == before  # cooling off: no lane tried
        assert dest.log_notes() == []
    assert progress.total == first.size
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        f"ftp://rec@127.0.0.1:{ftp_server.port}/norest: big files go over one FTP session for now: "
        "the server does not write at a REST position past the end of a file"
    ]
    assert sha256_of(ftp_server.read("norest/r/c/a.mp4")) == first.sha256
    assert sha256_of(ftp_server.read("norest/r/c/b.mp4")) == second.sha256
    assert visible_leftovers(ftp_server.read("norest")) == []


@pytest.mark.usefixtures("lanes_from_8_mib")
def test_a_server_that_refuses_more_sessions_gets_big_files_over_one_session(tmp_path, caplog):
    server = servers._start_server(tmp_path / "srv", tls=False, rest_past_end=True, max_sessions=1)
    try:
        local = make_file(tmp_path / "v.mp4", LANES_FROM + 1)
        with destination_for("ftp", server.config(root="limit")) as dest:
            dest.upload(local, "r/c/v.mp4", Progress())
            assert dest.lanes_used == 0
        assert sha256_of(server.read("limit/r/c/v.mp4")) == local.sha256
        assert server.logins() == 1
        [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert "a second session could not start: 421 while opening the FTP session" in warning
        assert FTP_PASSWORD not in warning
    finally:
        server.kill()


@pytest.mark.usefixtures("lanes_from_8_mib")
def test_a_server_that_locks_a_file_while_it_is_written_gets_big_files_over_one_session_after_a_short_wait(
    tmp_path, caplog
):
    """vsftpd's default lock_upload_files=YES: the second lane's STOR gets no
    reply while the first lane's is open. After LOCK_WAIT (not the 60 s
    timeout) every lane is closed with no byte sent over it, one warning, the
    file goes over one session and lanes are not tried again for a while."""
    from delivery.destinations.ftp import lanes

    server = servers._start_server(
        tmp_path / "srv", tls=False, multiprocess=True, rest_past_end=True, lock_uploads=True
    )
    try:
        first = make_file(tmp_path / "a.mp4", 20 * MiB + 3)
        second = make_file(tmp_path / "b.mp4", LANES_FROM + 5)
        progress = Progress()
        with destination_for("ftp", server.config(root="locked")) as dest:
            before = server.logins()
            started = time.monotonic()
            dest.upload(first, "r/c/a.mp4", progress)
            took = time.monotonic() - started
            assert dest.lanes_used == 0
            assert server.logins() - before == 2  # the lanes were tried
            before = server.logins()
            dest.upload(second, "r/c/b.mp4", Progress())
            assert server.logins() == before  # cooling off: no lane tried
            assert dest.log_notes() == []
        assert lanes.LOCK_WAIT <= took < lanes.LOCK_WAIT + 10
        # One session's 1 MiB blocks from byte 0; the one upload of the
        # temporary file that carried bytes carried all of them.
        assert progress.total == first.size and progress.calls == 21
        assert [n for n in server.stored("locked/r/c/.a.mp4.part") if n] == [first.size]
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert warnings == [
            f"ftp://rec@127.0.0.1:{server.port}/locked: big files go over one FTP session for now: "
            "the server seems to lock a file while it is written (vsftpd's lock_upload_files): "
            "the STOR of part 2 had no reply in 5 s"
        ]
        assert sha256_of(server.read("locked/r/c/a.mp4")) == first.sha256
        assert sha256_of(server.read("locked/r/c/b.mp4")) == second.sha256
        assert visible_leftovers(server.read("locked")) == []
    finally:
        server.kill()


@pytest.mark.usefixtures("lanes_from_8_mib")
def test_a_cut_lanes_upload_fails_cleanly_and_the_next_run_continues_each_lane(tmp_path):
    server = servers._start_server(tmp_path / "srv", tls=False, multiprocess=True, rest_past_end=True)
    size = 40 * MiB + 9
    local = make_file(tmp_path / "big.mp4", size)
    dest = destination_for("ftp", server.config(root="cut"))
    state: dict = {}

    def kill_midway(total: int) -> None:
        if total >= 24 * MiB and server.proc and server.proc.poll() is None:
            server.kill()

    try:
        with pytest.raises(TransferError) as info:
            dest.upload(local, "r/c/big.mp4", Progress(kill_midway), ResumePoint(save=state.update))
        assert not info.value.permanent
        assert info.value.message.startswith(f"Connection to 127.0.0.1:{server.port} lost while uploading /cut/r/c/.big.mp4.part")
        assert FTP_PASSWORD not in info.value.message
        server.start()
        assert state["lanes"] == [[0, 21 * MiB], [21 * MiB, size]]
        there = server.read("cut/r/c/.big.mp4.part").stat().st_size
        assert 21 * MiB < there <= size

        progress = Progress()
        notes: list[str] = []
        with dest:
            dest.upload(local, "r/c/big.mp4", progress, ResumePoint(state, save=state.update, note=notes.append))
            assert dest.verify(local, "r/c/big.mp4")
        # Only what the server did not keep is sent (a killed server loses
        # what sat in its sockets' buffers: megabytes on loopback).
        kept = int(notes[0].split(": ", 1)[1].split(" ", 1)[0])
        assert kept > 8 * MiB and progress.total == size - kept
        assert len(notes) == 1 and notes[0].startswith("continuing .big.mp4.part over 2 sessions: ")
        assert notes[0].endswith(f" of {size} bytes are already there")
        assert sha256_of(server.read("cut/r/c/big.mp4")) == local.sha256
        assert visible_leftovers(server.read("cut")) == []
    finally:
        server.kill()


@pytest.mark.usefixtures("lanes_from_8_mib")
def test_a_lane_whose_bytes_the_server_lost_starts_over(lanes_server: FTPServer, tmp_path):
    """The server's copy of the second lane is not what was sent (a disk that
    lost it): that lane starts over at its start, the first continues."""
    size = 20 * MiB
    local = make_file(tmp_path / "v.mp4", size)
    folder = lanes_server.read("lost/r/c")
    folder.mkdir(parents=True)
    partial = folder / ".v.mp4.part"
    ours = local.path.read_bytes()
    # Every byte after the first 6 MiB differs from ours (255 - b is never b).
    partial.write_bytes(ours[: 6 * MiB] + ours[6 * MiB : 17 * MiB].translate(bytes(range(255, -1, -1))))
    saved = {"temp": "/lost/r/c/.v.mp4.part", "lanes": [[0, 10 * MiB], [10 * MiB, size]],
             "sent": [6 * MiB, 19 * MiB]}  # fmt: skip
    progress = Progress()
    notes: list[str] = []
    with destination_for("ftp", lanes_config(lanes_server, root="lost")) as dest:
        dest.upload(local, "r/c/v.mp4", progress, ResumePoint(saved, note=notes.append))
    assert progress.total == size - 6 * MiB
    assert notes == [
        f"continuing .v.mp4.part over 2 sessions: {6 * MiB} of {size} bytes are already there; "
        "the server kept less of part 2 than was sent: that part starts over"
    ]
    assert sha256_of(folder / "v.mp4") == local.sha256


@pytest.mark.usefixtures("lanes_from_8_mib")
def test_a_single_session_upload_half_done_is_not_continued_over_lanes(lanes_server: FTPServer, tmp_path):
    local = make_file(tmp_path / "v.mp4", LANES_FROM + 4 * MiB)
    folder = lanes_server.read("single/r/c")
    folder.mkdir(parents=True)
    with open(local.path, "rb") as fh:
        (folder / ".v.mp4.part").write_bytes(fh.read(5 * MiB))
    progress = Progress()
    with destination_for("ftp", lanes_config(lanes_server, root="single")) as dest:
        dest.upload(local, "r/c/v.mp4", progress, ResumePoint({"temp": "/single/r/c/.v.mp4.part"}))
        assert dest.lanes_used == 0
    assert progress.total == local.size - 5 * MiB
    assert sha256_of(folder / "v.mp4") == local.sha256


@pytest.mark.usefixtures("lanes_from_8_mib")
def test_a_lanes_upload_half_done_goes_on_over_one_session_from_byte_0_if_lanes_cannot_start(
    ftp_server: FTPServer, tmp_path
):
    """Its temporary file's size says nothing of what is there (each lane
    wrote its part): one session starts it over."""
    local = make_file(tmp_path / "v.mp4", LANES_FROM + 2 * MiB)
    folder = ftp_server.read("fallback/r/c")
    folder.mkdir(parents=True)
    (folder / ".v.mp4.part").write_bytes(b"\0" * local.size)  # both lanes' ends, holes between
    saved = {"temp": "/fallback/r/c/.v.mp4.part", "lanes": [[0, 5 * MiB], [5 * MiB, local.size]],
             "sent": [1 * MiB, local.size]}  # fmt: skip
    progress = Progress()
    notes: list[str] = []
    with destination_for("ftp", ftp_server.config(root="fallback")) as dest:
        dest.upload(local, "r/c/v.mp4", progress, ResumePoint(saved, note=notes.append))
        assert dest.lanes_used == 0  # pyftpdlib as it comes: no REST past the end
    assert notes == ["sending v.mp4 again from byte 0 over one session"]
    assert progress.total == local.size
    assert sha256_of(folder / "v.mp4") == local.sha256


@pytest.mark.usefixtures("lanes_from_8_mib")
def test_a_big_partial_file_without_its_resume_state_is_not_trusted_by_its_size(
    ftp_server: FTPServer, tmp_path
):
    """Lanes leave holes: a temporary file as big as the file whose state was
    lost is sent again, not renamed into place."""
    local = make_file(tmp_path / "v.mp4", LANES_FROM + MiB)
    folder = ftp_server.read("nostate/r/c")
    folder.mkdir(parents=True)
    with open(local.path, "rb") as fh:
        ours = fh.read()
    (folder / ".v.mp4.part").write_bytes(bytes(4 * MiB) + ours[4 * MiB :])  # the first lane never came
    progress = Progress()
    with destination_for("ftp", ftp_server.config(root="nostate")) as dest:
        dest.upload(local, "r/c/v.mp4", progress, ResumePoint())
    assert progress.total == local.size
    assert sha256_of(folder / "v.mp4") == local.sha256
