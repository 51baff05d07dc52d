"""Half-sent SFTP and SCP uploads leave a temporary file (``.<name>.part-<token>``)
next to where the file goes. Against the real sshd (tests/servers/sshd.py): it
is removed when the delivery gives up, and when a person sends the delivery
again from scratch (the next run removes it and starts at byte 0)."""

from __future__ import annotations

import hashlib
import posixpath

import paramiko
import pytest
from django.utils import timezone
from django_q.conf import Conf

from delivery import engine, scheduling
from delivery.actions import deliveries as delivery_actions
from delivery.destinations.scp import SCPDestination
from delivery.destinations.sftp import SFTPDestination
from delivery.models import DeliveredFile, Delivery, DeliveryDestination
from tests.delivery import MB
from tests.delivery.engine_support import make_session
from tests.delivery.test_sftp import leftovers, sha256_of
from tests.servers import sshd as servers
from tests.servers.sshd import NOSHELL_USER

pytestmark = pytest.mark.django_db(transaction=True)

sshd_server = servers.sshd_server
sshd = servers.sshd

SIZE = 3 * MB + 5
KINDS = {"sftp": SFTPDestination, "scp": SCPDestination}
# What each kind saves when it starts a file: SFTP the temp file and the
# acknowledged offset (enough to continue it), SCP only that a copy began.
HALF = SIZE // 2


def ssh_destination(project, server, kind: str, root: str) -> DeliveryDestination:
    config = server.config(root=str(server.upload_dir() / root))
    secrets = {"password": config.pop("password")}
    return DeliveryDestination.objects.create(
        project=project, name=kind, kind=kind, file_types=["transcoded"], config=config,
        secrets=secrets,
    )  # fmt: skip


def half_sent(server, kind: str, destination: DeliveryDestination, remote: str) -> dict:
    """Leave a half-written temporary file of ``remote`` as a cut upload does
    (garbage bytes: continuing it would fail verification) and return the
    resume state the upload saved."""
    with KINDS[kind](destination.merged_config()) as dest:
        target = dest.full_path(remote)
        folder, name = posixpath.split(target)
        temp = posixpath.join(folder, f".{name}.part-0badf00d")
        dest._makedirs(folder)
        sftp = paramiko.SFTPClient.from_transport(dest.transport)
        assert sftp is not None
        with sftp.open(temp, "wb") as fh:
            fh.write(b"\xff" * HALF)
        sftp.close()
    return {"temp": temp, "offset": HALF} if kind == "sftp" else {"scp": "started"}


def temp_files(server, root: str, session) -> list[str]:
    folder = server.upload_dir() / root / session.room.room_id / session.conf_num
    return leftovers(folder) if folder.exists() else []


@pytest.fixture
def root(request) -> str:
    return hashlib.sha256(request.node.name.encode()).hexdigest()[:12]


@pytest.mark.parametrize("kind", ["sftp", "scp"])
def test_a_delivery_that_gives_up_removes_the_temporary_file_of_a_half_sent_upload(
    world, sshd, root, kind
):
    session = make_session(world.project, {"transcoded.mp4": ("transcoded", SIZE)})
    destination = ssh_destination(world.project, sshd, kind, root)
    scheduling.schedule_deliveries_for_session(session.pk)
    remote = f"{session.room.room_id}/{session.conf_num}/transcoded.mp4"
    DeliveredFile.objects.update(resume_state=half_sent(sshd, kind, destination, remote))
    assert temp_files(sshd, root, session) == [".transcoded.mp4.part-0badf00d"]
    # A permanent error: retention removed the file before it was delivered.
    session.files.update(expired_at=timezone.now())
    assert engine.run_delivery(Delivery.objects.get().pk) == "failed"
    assert temp_files(sshd, root, session) == []
    assert DeliveredFile.objects.get().resume_state == {}


@pytest.mark.parametrize("kind", ["sftp", "scp"])
def test_a_redelivery_removes_the_temporary_file_and_sends_the_file_from_scratch(
    world, sshd, root, kind, monkeypatch
):
    session = make_session(world.project, {"transcoded.mp4": ("transcoded", SIZE)})
    destination = ssh_destination(world.project, sshd, kind, root)
    scheduling.schedule_deliveries_for_session(session.pk)
    remote = f"{session.room.room_id}/{session.conf_num}/transcoded.mp4"
    DeliveredFile.objects.update(resume_state=half_sent(sshd, kind, destination, remote))
    monkeypatch.setattr(Conf, "SYNC", True)
    delivery_actions.do_redeliver_delivery(Delivery.objects.get(), acting_user=world.alice)
    delivery = Delivery.objects.get()
    assert delivery.state == Delivery.State.DELIVERED, delivery.last_error
    # Continuing the garbage half would not have verified: it started over.
    assert not [e for e in delivery.log if e["event"] == "resume"]
    final = sshd.upload_dir() / root / session.room.room_id / session.conf_num / "transcoded.mp4"
    assert sha256_of(final) == session.files.get().sha256
    assert temp_files(sshd, root, session) == []
    assert DeliveredFile.objects.get().resume_state == {}


def test_discard_removes_only_temporary_files_of_that_name(sshd, tmp_path):
    folder = sshd.upload_dir() / "discard-only"
    with SFTPDestination(sshd.config()) as dest:
        dest._makedirs(str(folder))
        for name in ("a.mp4", ".a.mp4.part-1234abcd", ".a.mp4.part-deadbeef", ".b.mp4.part-1234abcd"):
            with dest._client.open(str(folder / name), "wb") as fh:
                fh.write(b"x")
        dest.discard("discard-only/a.mp4", {"temp": "/etc/passwd", "offset": 1})  # not trusted
        dest.discard("missing-folder/a.mp4", {})  # nothing there: no error
    assert sorted(p.name for p in folder.iterdir()) == [".b.mp4.part-1234abcd", "a.mp4"]


def test_scp_without_a_shell_has_no_temporary_file_to_remove(sshd):
    with SCPDestination(sshd.config(NOSHELL_USER)) as dest:
        dest.discard("room/conf/a.mp4", {"scp": "started"})  # a plain write: nothing to do
