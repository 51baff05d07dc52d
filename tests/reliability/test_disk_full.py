"""The recording store fills up during an upload: a real portal (gunicorn)
whose DATA_DIR is a small tmpfs (or a loop-mounted ext4 image), a ballast file
leaving a few MB free, and an upload bigger than that through the ingest API.
The client gets 507 with the JSON error envelope, nothing half-written is
recorded or left behind, and the portal carries on once space is freed."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests import media_samples
from tests.servers import unavailable
from tests.servers.portal import PortalProcesses

pytestmark = pytest.mark.slow

MOUNT_MB = 48  # collectstatic alone puts ~13 MB into DATA_DIR
FREE_MB = 3
BIG_MB = 32  # far more than is free: the disk fills mid-stream


def _run(*cmd: str) -> bool:
    return subprocess.run(cmd, capture_output=True).returncode == 0


@contextlib.contextmanager
def small_mount(size_mb: int) -> Iterator[tuple[Path, str]]:
    """A folder with ``size_mb`` of space: tmpfs, else a loop-mounted ext4 image."""
    if os.geteuid() != 0:
        unavailable("mounting a size-limited folder needs root")
    mnt = Path(tempfile.mkdtemp(prefix="portal-full-"))
    image = None
    if _run("mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(mnt)):
        kind = "tmpfs"
    else:
        image = Path(tempfile.mkdtemp(prefix="portal-img-")) / "disk.img"
        with open(image, "wb") as fh:
            fh.truncate(size_mb * 1024 * 1024)
        if not (
            _run("mkfs.ext4", "-q", "-F", "-m", "0", str(image))
            and _run("mount", "-o", "loop", str(image), str(mnt))
        ):
            shutil.rmtree(image.parent, ignore_errors=True)
            unavailable("neither a tmpfs nor a loop-mounted ext4 image could be mounted here")
        kind = "ext4 loop image"
    try:
        yield mnt, kind
    finally:
        if not _run("umount", str(mnt)):
            _run("umount", "-l", str(mnt))
        shutil.rmtree(mnt, ignore_errors=True)
        if image is not None:
            shutil.rmtree(image.parent, ignore_errors=True)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@pytest.fixture(scope="module")
def full_portal():
    with small_mount(MOUNT_MB) as (mnt, kind):
        portal = PortalProcesses(data_dir=mnt)
        try:
            portal.setup()
            creds = portal.create_project("Disk full")
            portal.start_web()
            yield portal, creds, kind
        finally:
            portal.stop()


def recording_files(portal: PortalProcesses, conf_num: str) -> list[dict]:
    out = portal.manage("shell", "-c", (
        "import json; from recordings.models import RecordingFile as F;"
        f"print(json.dumps(list(F.objects.filter(session__conf_num={conf_num!r})"
        ".values('name', 'size', 'storage_path'))))"
    )).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def upload(portal: PortalProcesses, api, conf_num: str, path: Path, name: str):
    with open(path, "rb") as fh:
        return requests.post(
            f"{portal.public_url}/ingest/v1/sessions/{conf_num}/files", auth=api, timeout=120,
            data={"type": "individual", "participant": "p1"}, files={"file": (name, fh)},
        )  # fmt: skip


def test_an_upload_that_fills_the_disk_gets_507_and_leaves_nothing_behind(full_portal, tmp_path):
    portal, creds, kind = full_portal
    api = (creds["APP_ID"], creds["APP_KEY"])
    room = requests.post(
        f"{portal.public_url}/video/v2/rooms", json={"name": "full"}, auth=api, timeout=30
    )
    assert room.status_code in (200, 201), room.text
    room_id = room.json()["room"]["room_id"]
    started = requests.post(
        f"{portal.public_url}/ingest/v1/rooms/{room_id}/sessions", auth=api, timeout=30
    )
    conf_num = started.json()["conf_num"]

    ballast = portal.data_dir / "ballast.bin"
    with open(ballast, "wb") as fh:
        os.posix_fallocate(fh.fileno(), 0, free_bytes(portal.data_dir) - FREE_MB * 1024 * 1024)
    assert free_bytes(portal.data_dir) < (FREE_MB + 1) * 1024 * 1024, kind
    big = tmp_path / "big.wav"
    with open(big, "wb") as fh:  # a real recording: PCM audio, far larger than the free space
        fh.write(media_samples.wav_header(BIG_MB * 1024 * 1024))
        for _ in range(BIG_MB):
            fh.write(os.urandom(1024 * 1024))

    refused = upload(portal, api, conf_num, big, "big.wav")

    assert refused.status_code == 507, refused.text
    body = refused.json()
    assert body["result"] != 0 and "no space left" in body["error"].lower(), body
    assert recording_files(portal, conf_num) == []
    temp_dir = portal.data_dir / "tmp" / "uploads"
    assert not temp_dir.exists() or list(temp_dir.iterdir()) == []
    store = portal.data_dir / "recordings"
    assert not store.exists() or [p for p in store.rglob("*") if p.is_file()] == []
    # The temporary file's space came back: only the ballast holds the disk.
    assert free_bytes(portal.data_dir) > (FREE_MB - 1) * 1024 * 1024
    assert portal.get("/accounts/login/").status_code == 200

    ballast.unlink()
    small = tmp_path / "small.mp4"
    small.write_bytes(media_samples.recording())
    stored = upload(portal, api, conf_num, small, "small.mp4")

    assert stored.status_code == 201, stored.text
    assert stored.json()["file"]["size"] == small.stat().st_size
    [row] = recording_files(portal, conf_num)
    assert row["name"] == "small.mp4" and row["size"] == small.stat().st_size
    assert (store / row["storage_path"]).read_bytes() == small.read_bytes()
    assert list(temp_dir.iterdir()) == []
