"""Resume, not restart: a delivery worker (a real ``qcluster``) SIGKILLed half
way through a large upload, and the next worker finishing it. Every byte the
workers send goes through a byte-counting TCP proxy in front of the server
(tests/servers/counting_proxy.py), so the test sees what was really sent
again: at most one part's worth (16 MiB, parts.IN_FLIGHT) per file in flight.
FTP is seen through proxies on 127.0.0.2 for its control and passive ports
(over one session, and over lanes: two more sessions, each its own data connection);
SFTP and SCP through one proxy in front of OpenSSH, which carries the control
connection and both OpenSSH lanes of the big file.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

import pytest

from tests.reliability.faults_support import shell_call, start_sweeper, wait_until
from tests.servers.counting_proxy import CountingProxy, ProxiedFTP
from tests.servers.ftp import _start_server
from tests.servers.moto_s3 import MotoS3Server
from tests.servers.portal import PortalProcesses
from tests.servers.sshd import SHELL_USER, sshd_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

MB = 1024 * 1024
SIZE = 112 * MB
IN_FLIGHT = 16 * MB
# Requests and answers around the file itself: HTTP headers of each part,
# ListParts, HEADs, manifest.json.
OVERHEAD = 1 * MB
# Per connection, for S3: a few seconds for the file, so the kill lands in the
# middle of a part rather than between two loopback bursts.
RATE = 32 * MB


@pytest.fixture(scope="module")
def portal():
    portal = PortalProcesses(extra_env={
        "DELIVERY_LEASE_SECONDS": "4",
        "DELIVERY_RETRY_BASE_SECONDS": "1",
        "DELIVERY_RETRY_MAX_SECONDS": "2",
        "Q_WORKERS": "1",
    })  # fmt: skip
    sweeper = None
    try:
        portal.setup()
        # The dead worker's lease runs out after 4 s; the sweep hands the
        # delivery to the next worker (every second here, every minute in production).
        sweeper = start_sweeper(portal, interval=1.0)
        yield portal
    finally:
        if sweeper is not None:
            PortalProcesses.kill(sweeper)
        portal.stop()


def configure(portal: PortalProcesses, app_id: str, kind: str, settings: dict, folder: Path) -> None:
    """``delivery configure`` with secrets passed as KEY=@file, never in argv."""
    args = []
    for key, value in settings.items():
        if key in ("password", "secret_access_key"):
            path = folder / f"{kind}-{key}"
            path.write_text(str(value))
            value = f"@{path}"
        args += ["--set", f"{key}={value}"]
    portal.manage("delivery", "configure", app_id, "--kind", kind, "--name", kind,
                  "--types", "individual", *args)  # fmt: skip


def one_session(portal: PortalProcesses, app_id: str, size: int) -> dict:
    # No worker runs while the session is made: the last test's worker would
    # claim it at once, be killed below with its run unrecorded, and leave the
    # next worker less than half the file to send.
    for earlier in portal.workers:
        if earlier.poll() is None:
            portal.kill(earlier)
    code = f"from tests.reliability.faults_support import create_sessions as c; c({app_id!r}, 1, {size})"
    return json.loads(shell_call(portal, code).strip().splitlines()[-1])[0]


def delivery_row(portal: PortalProcesses, conf_num: str) -> tuple[str, int, list[dict]] | None:
    with sqlite3.connect(portal.data_dir / "portal.sqlite3", timeout=30) as db:
        row = db.execute(
            "SELECT d.state, d.attempts, d.log FROM delivery_delivery d "
            "JOIN recordings_session s ON s.id = d.session_id WHERE s.conf_num = ?",
            (conf_num,),
        ).fetchone()
    return (row[0], row[1], json.loads(row[2])) if row else None


def kill_halfway_then_finish(portal: PortalProcesses, proxy: CountingProxy | ProxiedFTP, made: dict) -> dict:
    """Start a worker, SIGKILL it once half the file went through the proxy,
    start another and wait until the delivery is delivered."""
    for earlier in portal.workers:  # only the worker started here may take the delivery
        if earlier.poll() is None:
            portal.kill(earlier)
    proxy.reset()
    worker = portal.start_worker()
    wait_until(lambda: proxy.upstream >= SIZE // 2, 180, "half the file to go out", every=0.01)
    portal.kill(worker)
    at_kill = proxy.upstream
    row = delivery_row(portal, made["conf_num"])
    assert row is not None and row[0] == "running"
    portal.start_worker()
    state, attempts, log = wait_until(
        lambda: (r := delivery_row(portal, made["conf_num"])) and r[0] == "delivered" and r, 240,
        "the next worker to finish the delivery", every=0.5,
    )  # fmt: skip
    total = proxy.upstream
    resent = total - SIZE
    print(f"\n{made['name']}: {SIZE / MB:.0f} MiB; killed after {at_kill / MB:.1f} MiB; "
          f"{total / MB:.1f} MiB sent in all, {resent / MB:.1f} MiB more than the file")  # fmt: skip
    return {"attempts": attempts, "log": log, "total": total, "at_kill": at_kill}


def test_an_s3_upload_killed_halfway_is_continued_resending_at_most_one_part(portal, tmp_path):
    server = MotoS3Server().start()
    try:
        with CountingProxy(server.port, rate=RATE) as proxy:
            app_id = portal.create_project("Resume S3")["APP_ID"]
            proxied = f"http://127.0.0.1:{proxy.port}"
            configure(portal, app_id, "s3", server.destination_config(endpoint_url=proxied,
                      root="resume"), tmp_path)  # fmt: skip
            made = one_session(portal, app_id, SIZE)
            result = kill_halfway_then_finish(portal, proxy, made)

            assert result["total"] <= SIZE + IN_FLIGHT + OVERHEAD
            assert result["attempts"] == 2
            resumed = [e["message"] for e in result["log"] if e["event"] == "resume"]
            assert len(resumed) == 1 and "continuing the multipart upload" in resumed[0]
            key = f"resume/{made['room_id']}/{made['conf_num']}/{made['name']}"
            client = server.client()
            body = client.get_object(Bucket=server.bucket, Key=key)["Body"]
            digest = hashlib.sha256()
            for chunk in body.iter_chunks(MB):
                digest.update(chunk)
            assert digest.hexdigest() == made["sha256"]
            assert client.list_multipart_uploads(Bucket=server.bucket).get("Uploads", []) == []
    finally:
        server.stop()


def ftp_killed_halfway(portal, tmp_path: Path, name: str, **server_options) -> tuple[dict, dict, Path]:
    """An FTP delivery of one SIZE file, its worker killed halfway and the
    next one finishing it; the delivered file is checked."""
    server = _start_server(tmp_path / "ftp", tls=False, **server_options)
    # At full loopback speed: a slowed proxy keeps feeding the server from
    # its buffers after the client died, which no longer shows the client's cost.
    proxy = ProxiedFTP(server.port, server.passive_ports)
    try:
        app_id = portal.create_project(name)["APP_ID"]
        config = server.config(root="resume", host=ProxiedFTP.HOST, port=proxy.port)
        configure(portal, app_id, "ftp", config, tmp_path)
        made = one_session(portal, app_id, SIZE)
        result = kill_halfway_then_finish(portal, proxy, made)
        delivered = server.read(f"resume/{made['room_id']}/{made['conf_num']}/{made['name']}")
        digest = hashlib.sha256()
        with open(delivered, "rb") as fh:
            while chunk := fh.read(MB):
                digest.update(chunk)
        assert digest.hexdigest() == made["sha256"]
        assert not list(delivered.parent.glob(".*.part"))
        return made, result, delivered
    finally:
        proxy.close()
        server.kill()


def test_an_ftp_upload_killed_halfway_is_continued_from_the_temporary_files_size(
    portal, tmp_path
):
    """pyftpdlib as it comes does not let a REST go past a file's end, so
    the file goes over one session (no lanes): SIZE, then REST + STOR."""
    made, result, _delivered = ftp_killed_halfway(portal, tmp_path, "Resume FTP")
    assert result["total"] <= SIZE + IN_FLIGHT + OVERHEAD
    resumed = [e["message"] for e in result["log"] if e["event"] == "resume"]
    assert len(resumed) == 1 and resumed[0].startswith(f"{made['name']}: continuing ."), result["log"]
    assert " at byte " in resumed[0]
    assert not [e for e in result["log"] if e["event"] == "lanes"]


def test_an_ftp_upload_over_lanes_killed_halfway_is_continued_lane_by_lane(portal, tmp_path):
    """A server with a process per session that lets REST go past a file's
    end (as vsftpd): the file goes over two more sessions; the next worker
    reads back a window around each lane's saved position and sends each
    lane's rest."""
    made, result, _delivered = ftp_killed_halfway(
        portal, tmp_path, "Resume FTP lanes", multiprocess=True, rest_past_end=True
    )
    assert result["total"] <= SIZE + IN_FLIGHT + OVERHEAD
    assert result["attempts"] == 2, "\n".join(f"{e['event']}: {e['message']}" for e in result["log"])
    resumed = [e["message"] for e in result["log"] if e["event"] == "resume"]
    assert len(resumed) == 1 and resumed[0].startswith(f"{made['name']}: continuing ."), result["log"]
    assert "over 2 sessions" in resumed[0] and "starts over" not in resumed[0]
    assert [e for e in result["log"] if e["event"] == "lanes"]


@pytest.mark.parametrize("kind", ["sftp", "scp"])
def test_an_ssh_upload_killed_halfway_is_continued_lane_by_lane(portal, sshd_server, tmp_path, kind):  # noqa: F811
    """The file (112 MiB) goes over two OpenSSH lanes; the killed worker's
    ``ssh`` processes see the end of their input, the next worker scans the
    temporary file and sends each lane's rest. SCP too: over lanes it resumes."""
    root = sshd_server.upload_dir(SHELL_USER) / f"resume-{kind}"
    with CountingProxy(sshd_server.port, rate=RATE) as proxy:
        app_id = portal.create_project(f"Resume {kind}")["APP_ID"]
        config = sshd_server.config(port=proxy.port, root=str(root))
        del config["pinned_fingerprint"]  # pinned the way an operator does it
        configure(portal, app_id, kind, config, tmp_path)
        portal.manage("delivery", "test", app_id, "--name", kind, "--trust-host-key")
        made = one_session(portal, app_id, SIZE)
        result = kill_halfway_then_finish(portal, proxy, made)

        # Besides the file: three logins per run (key exchange, auth), the
        # scan's and verify's commands, manifest.json.
        assert result["total"] <= SIZE + IN_FLIGHT + OVERHEAD
        assert result["attempts"] == 2, "\n".join(f"{e['event']}: {e['message']}" for e in result["log"])
        resumed = [e["message"] for e in result["log"] if e["event"] == "resume"]
        assert len(resumed) == 1 and "over 2 connections" in resumed[0], result["log"]
        assert "bytes are already there" in resumed[0] and "cannot resume" not in resumed[0]
        assert [e for e in result["log"] if e["event"] == "lanes"]
    folder = root / made["room_id"] / made["conf_num"]
    digest = hashlib.sha256()
    with open(folder / made["name"], "rb") as fh:
        while chunk := fh.read(MB):
            digest.update(chunk)
    assert digest.hexdigest() == made["sha256"]
    assert not [p.name for p in folder.iterdir() if ".part-" in p.name]


def test_the_proxy_counts_what_goes_through_each_way():
    import socket

    with socket.create_server(("127.0.0.1", 0)) as echo_server:
        port = echo_server.getsockname()[1]
        with CountingProxy(port) as proxy:
            client = socket.create_connection(("127.0.0.1", proxy.port))
            peer, _ = echo_server.accept()
            client.sendall(b"x" * 100_000)
            got = b""
            while len(got) < 100_000:
                got += peer.recv(65536)
            peer.sendall(b"y" * 10)
            assert client.recv(10) == b"y" * 10
            client.close()
            peer.close()
            deadline = time.monotonic() + 5
            while proxy.downstream < 10 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert (proxy.upstream, proxy.downstream) == (100_000, 10)
