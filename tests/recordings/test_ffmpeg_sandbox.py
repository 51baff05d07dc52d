"""Every ffmpeg run is boxed in: allowed demuxers and the file protocol only, a
timeout scaled to the media, and address-space, CPU and file-size limits set
in the child. Run against the real ffmpeg of imageio-ffmpeg."""

from __future__ import annotations

import resource
import sys
import tempfile
from pathlib import Path

import pytest

from recordings import ffmpeg, media
from recordings.media import MediaError, NotMedia, composite_command, make_composite
from tests import media_samples

COMPOSITE = {"width": 320, "height": 180, "preset": "ultrafast"}


@pytest.fixture
def recording(tmp_path) -> Path:
    path = tmp_path / "alice.mp4"
    path.write_bytes(media_samples.recording(2))
    return path


def test_every_input_of_a_composite_is_opened_through_the_allowlists(recording):
    cmd = composite_command([recording, recording, recording], "out.mp4")
    inputs = [i for i, arg in enumerate(cmd) if arg == "-i"]
    assert len(inputs) == 3
    for i in inputs:
        assert cmd[i - 4 : i] == [
            "-format_whitelist", ffmpeg.FORMAT_WHITELIST, "-protocol_whitelist", "file",
        ]  # fmt: skip
    assert "hls" not in ffmpeg.FORMAT_WHITELIST.split(",")


def test_a_playlist_that_reached_the_store_cannot_pull_another_file_into_a_composite(
    recording, tmp_path
):
    """Files stored before the door checked them are still opened only as media."""
    secret = tmp_path / "other-tenant.mp4"
    secret.write_bytes(media_samples.recording(1, index=2))
    for name, body in (("p.m3u8", media_samples.hls_playlist(secret)),
                       ("c.mp4", media_samples.concat_list(secret))):  # fmt: skip
        hostile = tmp_path / name
        hostile.write_bytes(body)
        output = tmp_path / "out" / "transcoded.mp4"
        output.parent.mkdir(exist_ok=True)
        with pytest.raises(NotMedia):
            make_composite([recording, hostile], output, **COMPOSITE)
        assert not output.exists()


def test_the_limits_are_set_in_the_child_process():
    limits = ffmpeg.Limits(timeout=30, output_bytes=50 * 1024 * 1024, memory_bytes=1024**3)
    script = (
        "import resource, sys\n"
        "for name in ('RLIMIT_AS', 'RLIMIT_CPU', 'RLIMIT_FSIZE'):\n"
        "    print(name, *resource.getrlimit(getattr(resource, name)), file=sys.stderr)\n"
    )
    with tempfile.TemporaryFile() as err:
        assert ffmpeg.run([sys.executable, "-c", script], "Reading limits", limits,
                          stderr_file=err) == 0  # fmt: skip
        err.seek(0)
        seen = {line.split()[0]: int(line.split()[1]) for line in err.read().decode().splitlines()}
    assert seen["RLIMIT_AS"] == 1024**3
    assert seen["RLIMIT_CPU"] == limits.cpu_seconds
    assert seen["RLIMIT_FSIZE"] == 50 * 1024 * 1024
    # The test process itself is not limited.
    assert resource.getrlimit(resource.RLIMIT_FSIZE)[0] == resource.RLIM_INFINITY


def test_a_run_that_outlasts_its_timeout_is_stopped(tmp_path):
    limits = ffmpeg.Limits(timeout=2, output_bytes=1024**3)
    endless = [*ffmpeg.base_command(), "-re", *ffmpeg.lavfi_args("testsrc2=s=160x90:d=3600"),
               "-f", "null", "-"]  # fmt: skip
    with pytest.raises(MediaError, match="took longer than 2 s and was stopped"):
        ffmpeg.run(endless, "Encoding an endless input", limits)


def test_a_run_that_writes_too_much_is_stopped_by_the_file_size_limit(tmp_path):
    output = tmp_path / "huge.nut"
    limits = ffmpeg.Limits(timeout=120, output_bytes=ffmpeg.STDERR_MAX_BYTES)
    raw = [*ffmpeg.base_command(), *ffmpeg.lavfi_args("testsrc2=s=640x480:d=20"),
           "-c:v", "rawvideo", "-f", "nut", str(output)]  # fmt: skip
    with pytest.raises(MediaError, match=r"stopped by a resource limit \(SIGXFSZ\)"):
        ffmpeg.run(raw, "Writing raw video", limits)
    assert output.stat().st_size <= ffmpeg.STDERR_MAX_BYTES


def test_a_huge_image_cannot_take_more_memory_than_allowed(tmp_path):
    """A 12000x12000 PNG decodes to ~150 MB of pixels (0.5 GB as RGB); under a
    512 MB address space ffmpeg fails instead of taking the machine's memory.
    (The door never lets an image in; this is the limit behind it.)"""
    image = tmp_path / "big.png"
    image.write_bytes(media_samples.png(12000, 12000))
    # One thread each, so the memory needed does not depend on the machine's CPUs.
    decode = [*ffmpeg.base_command(), "-threads", "1", "-i", str(image), "-filter_threads", "1",
              "-threads", "1", "-pix_fmt", "rgb24", "-f", "null", "-"]  # fmt: skip
    unlimited = ffmpeg.Limits(timeout=120, output_bytes=0, memory_bytes=8 * 1024**3)
    ffmpeg.run(decode, "Decoding a huge image", unlimited)  # it does decode, given the memory
    small = ffmpeg.Limits(timeout=120, output_bytes=0, memory_bytes=512 * 1024**2)
    with pytest.raises(MediaError, match="Cannot allocate memory"):
        ffmpeg.run(decode, "Decoding a huge image", small)
    # The same limit leaves room for an ordinary image.
    image.write_bytes(media_samples.png(640, 360))
    ffmpeg.run(decode, "Decoding an ordinary image", small)


def test_the_composite_timeout_and_output_size_grow_with_the_media():
    short, long = media.composite_limits(60), media.composite_limits(3600)
    assert short.timeout == 120 + 2 * 60 and long.timeout == 120 + 2 * 3600
    assert long.output_bytes > short.output_bytes > 64 * 1024 * 1024
    assert long.cpu_seconds >= long.timeout


def test_ffmpeg_gets_none_of_the_portals_secrets(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "portal-secret-key-value")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-value")
    script = "import os, sys; print(sorted(os.environ), file=sys.stderr)"
    limits = ffmpeg.Limits(timeout=30, output_bytes=0)
    with tempfile.TemporaryFile() as err:
        ffmpeg.run([sys.executable, "-c", script], "Listing the environment", limits,
                   stderr_file=err)  # fmt: skip
        err.seek(0)
        names = err.read().decode()
    assert "SECRET_KEY" not in names and "AWS_SECRET_ACCESS_KEY" not in names
    assert "MALLOC_ARENA_MAX" in names
