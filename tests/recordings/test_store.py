"""recordings/store.py on its default backend, a folder under DATA_DIR (the
bucket backend has tests/recordings/test_store_s3.py)."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from recordings import store


def root(settings) -> Path:
    return Path(settings.RECORDINGS_ROOT)


def test_a_path_is_renamed_into_the_folder_and_hashed(settings, tmp_path):
    source = tmp_path / "cam.webm"
    source.write_bytes(b"abc" * 1000)
    stored = store.put("app/room/1/cam.webm", source, move=True)
    assert stored == store.Stored(
        "app/room/1/cam.webm", 3000, hashlib.sha256(b"abc" * 1000).hexdigest()
    )
    assert not source.exists()
    assert (root(settings) / "app/room/1/cam.webm").read_bytes() == b"abc" * 1000
    assert store.local_path("app/room/1/cam.webm") == root(settings) / "app/room/1/cam.webm"


def test_a_file_object_is_streamed_in_and_a_taken_name_is_refused(settings, tmp_path):
    data = os.urandom(3 * store.CHUNK + 5)
    stored = store.put("a/r/1/x.bin", io.BytesIO(data))
    assert stored.size == len(data) and stored.sha256 == hashlib.sha256(data).hexdigest()
    with pytest.raises(FileExistsError):
        store.put("a/r/1/x.bin", io.BytesIO(b"other"))
    source = tmp_path / "x.bin"
    source.write_bytes(b"other")
    with pytest.raises(FileExistsError):
        store.put("a/r/1/x.bin", source, move=True)
    assert source.exists()  # refused: the upload is still the caller's to discard
    assert (root(settings) / "a/r/1/x.bin").read_bytes() == data


def test_reads_ranges_sizes_listing_and_delete(settings):
    data = bytes(range(256)) * 10
    store.put("a/r/1/x.bin", io.BytesIO(data))
    store.put("a/r/2/y.bin", io.BytesIO(b"y"))
    assert b"".join(store.iter_range("a/r/1/x.bin", 250, 20, chunk=7)) == data[250:270]
    assert store.read_bytes("a/r/1/x.bin", 4) == data[:4]
    assert store.size("a/r/1/x.bin") == len(data) and store.exists("a/r/1/x.bin")
    assert sorted(store.listing("a")) == ["a/r/1/x.bin", "a/r/2/y.bin"]
    assert list(store.listing("nothing-here")) == []
    store.delete("a/r/1/x.bin")
    store.delete("a/r/1/x.bin")
    assert not store.exists("a/r/1/x.bin")
    with pytest.raises(store.Missing):
        store.size("a/r/1/x.bin")
    with pytest.raises(store.Missing):
        store.read_bytes("a/r/1/x.bin", 4)


def test_fetch_gives_the_stored_file_itself_without_a_copy(settings):
    store.put("a/r/1/x.bin", io.BytesIO(b"x"))
    with store.fetch("a/r/1/x.bin") as fetched:
        assert fetched.path == root(settings) / "a/r/1/x.bin"
    assert fetched.path.exists()  # the store's own file is not removed
    assert not (Path(settings.DATA_DIR) / "tmp").exists()
    with pytest.raises(store.Missing), store.fetch("a/r/1/none.bin"):
        pass


def test_names_that_climb_out_of_the_store_are_refused(settings):
    from django.core.exceptions import SuspiciousFileOperation

    with pytest.raises(SuspiciousFileOperation):
        store.put("../outside.bin", io.BytesIO(b"x"))
    assert not (Path(settings.DATA_DIR) / "outside.bin").exists()
