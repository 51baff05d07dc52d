"""Local or NFS folder destination, against a temporary folder."""

from __future__ import annotations

import os
import subprocess

import pytest

from delivery.destinations import destination_class
from delivery.destinations.base import TransferError
from delivery.destinations.local import LocalFolderDestination, LocalFolderForm
from tests.delivery import Progress, random_file


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "mnt"
    path.mkdir()
    return path


@pytest.fixture
def dest(folder):
    with LocalFolderDestination({"path": str(folder), "root": "/portal/"}) as d:
        yield d


def test_the_registry_points_at_this_class():
    assert destination_class("local") is LocalFolderDestination


def test_it_copies_a_file_to_root_room_conf_name(folder, dest, tmp_path):
    local = random_file(tmp_path / "src" / "transcoded.mp4", 9 * 1024 * 1024 + 5)
    progress = Progress()
    dest.upload(local, "room1/42/transcoded.mp4", progress)
    target = folder / "portal" / "room1" / "42" / "transcoded.mp4"
    assert target.read_bytes() == local.path.read_bytes()
    assert progress.total == local.size
    assert dest.final_path("room1/42/transcoded.mp4") == str(target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["transcoded.mp4"]  # no .part left


def test_verify_is_true_for_an_intact_copy_and_false_otherwise(folder, dest, tmp_path):
    local = random_file(tmp_path / "src" / "chat.txt", 4000)
    assert dest.verify(local, "room1/42/chat.txt") is False
    dest.upload(local, "room1/42/chat.txt", Progress())
    assert dest.verify(local, "room1/42/chat.txt") is True
    target = folder / "portal" / "room1" / "42" / "chat.txt"
    with open(target, "r+b") as fh:  # same size, one byte changed
        fh.seek(100)
        fh.write(bytes([target.read_bytes()[100] ^ 0xFF]))
    assert dest.verify(local, "room1/42/chat.txt") is False
    target.write_bytes(b"short")
    assert dest.verify(local, "room1/42/chat.txt") is False


def test_it_refuses_a_path_that_climbs_out_of_the_root_into_the_shared_folder(folder, dest):
    with pytest.raises(TransferError) as caught:
        dest.upload(None, "../beside-root.txt", Progress())  # type: ignore[arg-type]
    assert caught.value.permanent
    assert not (folder / "beside-root.txt").exists()


@pytest.mark.parametrize(
    "path", ["../../escape.txt", "room/../../../escape.txt", "/../../escape.txt"]
)
def test_it_refuses_a_path_that_escapes_the_folder(folder, dest, tmp_path, path):
    local = random_file(tmp_path / "src" / "a.txt", 10)
    with pytest.raises(TransferError) as caught:
        dest.upload(local, path, Progress())
    assert caught.value.permanent
    assert "escapes" in caught.value.message
    assert not (folder / "escape.txt").exists() and not (tmp_path / "escape.txt").exists()


def test_it_refuses_a_symlink_that_leads_out_of_the_folder(folder, dest, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (folder / "portal").mkdir()
    os.symlink(outside, folder / "portal" / "room1")
    with pytest.raises(TransferError):
        dest.upload(random_file(tmp_path / "src" / "a.txt", 10), "room1/42/a.txt", Progress())
    assert list(outside.iterdir()) == []


def test_check_writes_and_removes_a_probe(folder, dest):
    assert "probe" in dest.check()
    assert list((folder / "portal").iterdir()) == []


def test_a_missing_folder_is_a_permanent_error(tmp_path):
    with pytest.raises(TransferError) as caught:
        LocalFolderDestination({"path": str(tmp_path / "not-mounted")}).open()
    assert caught.value.permanent
    assert "does not exist or is not mounted" in caught.value.message


def test_a_read_only_folder_is_a_permanent_error(folder, dest, tmp_path):
    read_only = folder / "portal"
    read_only.mkdir()
    if os.geteuid() == 0:
        # root ignores permission bits: a read-only mount is what it cannot write.
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(read_only)],
                       check=True)  # fmt: skip
        undo = ["umount", str(read_only)]
    else:
        read_only.chmod(0o500)
        undo = ["chmod", "700", str(read_only)]
    try:
        with pytest.raises(TransferError) as caught:
            dest.upload(random_file(tmp_path / "src" / "a.txt", 10), "a.txt", Progress())
        assert caught.value.permanent
        assert str(read_only) in caught.value.message
    finally:
        subprocess.run(undo, check=True)


def test_the_form_wants_an_absolute_path():
    assert not LocalFolderForm({"path": "relative/dir"}).is_valid()
    form = LocalFolderForm({"path": "/mnt/recordings", "root": "/a/b/"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["root"] == "a/b"
