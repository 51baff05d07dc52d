"""The media layer against the real ffmpeg from imageio-ffmpeg (small and short
files so the whole module runs in a few seconds)."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import pytest

from recordings import ffmpeg
from recordings.media import (
    MediaError,
    NotMedia,
    composite_command,
    duration_of,
    ffmpeg_exe,
    grid_for,
    make_composite,
    make_poster,
    probe,
    tile_positions,
)
from recordings.samples import (
    generate_chat_transcript,
    generate_metadata_log,
    generate_participant_media,
)

SMALL = {"width": 160, "height": 90, "preset": "ultrafast"}
TEST_LIMITS = ffmpeg.Limits(timeout=120, output_bytes=64 * 1024 * 1024)
COMPOSITE = {"width": 320, "height": 180, "preset": "ultrafast"}


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def participants(media_dir) -> list[Path]:
    paths = []
    for index, (name, seconds) in enumerate([("Alice", 4), ("Bob", 5), ("Carol: O'Hara", 6)]):
        path = media_dir / f"individual_recording_{index + 1}.mp4"
        generate_participant_media(path, name=name, seconds=seconds, index=index, **SMALL)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def silent(media_dir) -> Path:
    path = media_dir / "silent.mp4"
    generate_participant_media(path, name="Dave", seconds=3, index=3, with_audio=False, **SMALL)
    return path


@pytest.fixture(scope="module")
def audio_only(media_dir) -> Path:
    path = media_dir / "audio_only.m4a"
    ffmpeg.run(
        [*ffmpeg.base_command(), *ffmpeg.lavfi_args("sine=frequency=330:duration=2"),
         "-c:a", "aac", str(path)],
        "making an audio-only file", TEST_LIMITS,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def broken(media_dir) -> Path:
    path = media_dir / "broken.mp4"
    path.write_bytes(b"this is not a video, just some bytes " * 100)
    return path


def top_level_boxes(path: Path) -> list[str]:
    """Types of the top-level MP4 boxes, in file order, reading only headers."""
    boxes = []
    with path.open("rb") as handle:
        while header := handle.read(8):
            size, kind = struct.unpack(">I4s", header)
            boxes.append(kind.decode("latin-1"))
            if size == 1:
                size = struct.unpack(">Q", handle.read(8))[0]
                handle.seek(size - 16, 1)
            elif size == 0:
                break
            else:
                handle.seek(size - 8, 1)
    return boxes


def test_generated_participant_media_is_h264_aac_of_the_exact_duration(participants):
    info = probe(participants[0])
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert (info.width, info.height) == (160, 90)
    assert info.duration == pytest.approx(4.0, abs=0.1)
    assert duration_of(participants[2]) == pytest.approx(6.0, abs=0.1)


def test_generated_media_can_leave_out_audio(silent):
    info = probe(silent)
    assert info.has_video and not info.has_audio


def test_probe_sees_an_audio_only_file(audio_only):
    info = probe(audio_only)
    assert info.has_audio and not info.has_video
    assert info.width is None
    assert info.duration == pytest.approx(2.0, abs=0.1)


def test_probe_says_a_missing_file_is_missing(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        probe(tmp_path / "nope.mp4")


def test_probe_says_which_file_is_not_media(broken):
    with pytest.raises(NotMedia) as caught:
        probe(broken)
    assert caught.value.message == (
        "broken.mp4 is data ffmpeg does not recognise as media, "
        "not a recording in an allowed format"
    )


@pytest.mark.parametrize(
    ("count", "grid"),
    [(1, (1, 1)), (2, (2, 1)), (3, (2, 2)), (4, (2, 2)), (5, (3, 3)), (9, (3, 3)), (16, (4, 4))],
)
def test_the_grid_grows_with_the_number_of_participants(count, grid):
    assert grid_for(count) == grid


def test_tiles_stay_on_the_canvas_and_never_overlap():
    for count in range(1, 17):
        cell_w, cell_h, positions = tile_positions(count, 1280, 720)
        assert cell_w % 2 == 0 and cell_h % 2 == 0
        for x, y in positions:
            assert 0 <= x and x + cell_w <= 1280 and 0 <= y and y + cell_h <= 720
        cells = {(x // cell_w, y // cell_h) for x, y in positions}
        assert len(set(positions)) == count and len(cells) == count


def test_three_tiles_show_two_above_one_centred():
    _, _, positions = tile_positions(3, 1280, 720)
    assert positions == [(0, 0), (640, 0), (320, 360)]


def test_composite_command_refuses_more_than_sixteen_inputs(participants):
    with pytest.raises(MediaError, match="1 to 16"):
        composite_command(participants * 6, "out.mp4")


def test_composite_command_is_h264_aac_faststart_and_as_long_as_the_longest(participants):
    cmd = composite_command(participants, "out.mp4")
    assert cmd[0] == ffmpeg_exe()
    for option in (["-c:v", "libx264"], ["-pix_fmt", "yuv420p"], ["-c:a", "aac"],
                   ["-movflags", "+faststart"], ["-t", "6.000"], ["-preset", "veryfast"]):  # fmt: skip
        assert " ".join(option) in " ".join(cmd)
    graph = cmd[cmd.index("-filter_complex") + 1]
    assert "xstack=inputs=3" in graph and "amix=inputs=3:duration=longest" in graph


def test_composite_of_three_lasts_as_long_as_the_longest_and_starts_fast(participants, media_dir):
    output = media_dir / "transcoded.mp4"
    info = make_composite(participants, output, **COMPOSITE)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert (info.width, info.height) == (320, 180)
    assert info.duration == pytest.approx(6.0, abs=0.5)
    boxes = top_level_boxes(output)
    assert boxes.index("moov") < boxes.index("mdat")
    assert not [p for p in media_dir.iterdir() if p.name.startswith(".transcoded")]


def test_composite_of_one_participant(participants, tmp_path):
    info = make_composite(participants[1:2], tmp_path / "one.mp4", **COMPOSITE)
    assert info.has_video and info.has_audio
    assert info.duration == pytest.approx(5.0, abs=0.5)


def test_composite_of_four_participants_including_one_without_audio(participants, silent, tmp_path):
    info = make_composite([*participants, silent], tmp_path / "four.mp4", **COMPOSITE)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert info.duration == pytest.approx(6.0, abs=0.5)


def test_composite_of_recordings_without_audio_still_has_a_silent_track(silent, tmp_path):
    info = make_composite([silent, silent], tmp_path / "silent.mp4", **COMPOSITE)
    assert info.has_audio and info.audio_codec == "aac"
    assert info.duration == pytest.approx(3.0, abs=0.5)


def test_composite_shows_a_tile_for_an_audio_only_recording(participants, audio_only, tmp_path):
    info = make_composite([participants[0], audio_only], tmp_path / "mixed.mp4", **COMPOSITE)
    assert info.has_video and info.has_audio
    assert info.duration == pytest.approx(4.0, abs=0.5)


def test_composite_with_a_broken_input_names_it_and_writes_nothing(participants, broken, tmp_path):
    output = tmp_path / "transcoded.mp4"
    with pytest.raises(MediaError) as caught:
        make_composite([participants[0], broken], output, **COMPOSITE)
    assert "broken.mp4" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_failing_ffmpeg_run_reports_the_end_of_its_stderr(tmp_path):
    missing = tmp_path / "missing.mp4"
    with pytest.raises(MediaError) as caught:
        ffmpeg.run([ffmpeg_exe(), "-i", str(missing), str(tmp_path / "x.mp4")], "Converting",
                   TEST_LIMITS)  # fmt: skip
    message = caught.value.message
    assert message.startswith("Converting failed (ffmpeg exit")
    assert "No such file or directory" in message


def test_poster_is_a_jpeg(participants, tmp_path):
    poster = tmp_path / "poster.jpg"
    make_poster(participants[0], poster)
    assert poster.read_bytes()[:3] == b"\xff\xd8\xff"
    # probe() refuses images (not an allowed input); ask ffmpeg directly.
    summary = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(poster)], capture_output=True, text=True
    ).stderr
    assert "mjpeg" in summary and "160x90" in summary


def test_poster_of_a_video_shorter_than_the_seek_is_its_first_frame(participants, tmp_path):
    poster = tmp_path / "poster.jpg"
    make_poster(participants[0], poster, at_seconds=60)
    assert poster.stat().st_size > 0


def test_poster_of_audio_only_says_there_is_no_video(audio_only, tmp_path):
    with pytest.raises(MediaError, match="no video stream"):
        make_poster(audio_only, tmp_path / "poster.jpg")


def test_chat_transcript_is_a_time_ordered_json_list(tmp_path):
    path = tmp_path / "chat.json"
    generate_chat_transcript(path, ["Alice", "Bob"], 90)
    messages = json.loads(path.read_text())
    assert len(messages) >= 2
    assert {tuple(sorted(m)) for m in messages} == {("from", "message", "timestamp")}
    assert {m["from"] for m in messages} <= {"Alice", "Bob"}
    assert [m["timestamp"] for m in messages] == sorted(m["timestamp"] for m in messages)


def test_metadata_log_has_join_leave_and_stream_events_in_order(tmp_path):
    path = tmp_path / "metadata.json"
    generate_metadata_log(path, ["Alice", "Bob", "Carol"], 60, room_id="room-1", conf_num="42")
    log = json.loads(path.read_text())
    assert (log["room_id"], log["conf_num"]) == ("room-1", "42")
    events = log["events"]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "session-started" and kinds[-1] == "session-ended"
    assert kinds.count("user-joined") == kinds.count("user-left") == 3
    assert "stream-state" in kinds and "stream-published" in kinds
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
    assert log["started_at"] <= events[1]["timestamp"] <= log["ended_at"]


def test_a_composite_ffmpeg_rejects_leaves_no_partial_file_and_says_why(participants, tmp_path):
    output = tmp_path / "transcoded.mp4"
    with pytest.raises(MediaError) as caught:
        make_composite(participants, output, width=320, height=180, preset="no-such-preset")
    assert caught.value.message.startswith("Compositing 3 recording(s) into transcoded.mp4 failed")
    assert "preset" in caught.value.message.lower()
    assert list(tmp_path.iterdir()) == []


def test_probe_measures_a_live_written_webm_that_has_no_duration_header(tmp_path):
    path = tmp_path / "live.webm"
    with path.open("wb") as out:
        subprocess.run(
            [ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=160x90:d=3",
             "-f", "lavfi", "-i", "sine=d=3", "-c:v", "libvpx", "-deadline", "realtime",
             "-c:a", "libopus", "-f", "webm", "pipe:1"],
            stdout=out, check=True,
        )  # fmt: skip
    info = probe(path)
    assert (info.video_codec, info.audio_codec, info.width) == ("vp8", "opus", 160)
    assert info.duration == pytest.approx(3.0, abs=0.1)


@pytest.mark.parametrize("count", [9, 16])
def test_composite_of_up_to_sixteen_participants(participants, silent, count, tmp_path):
    inputs = ([*participants, silent] * 4)[:count]
    info = make_composite(inputs, tmp_path / "grid.mp4", **COMPOSITE)
    assert info.has_video and info.has_audio
    assert info.duration == pytest.approx(6.0, abs=0.5)


def test_a_video_track_starting_late_is_held_on_its_first_frame_from_time_zero(tmp_path):
    late = tmp_path / "late_video.mp4"
    ffmpeg.run(
        [*ffmpeg.base_command(), "-itsoffset", "0.5", *ffmpeg.lavfi_args("testsrc2=s=160x90:d=3"),
         *ffmpeg.lavfi_args("sine=d=3.5"),
         "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(late)],
        "making a file whose video starts late", TEST_LIMITS,
    )  # fmt: skip
    output = tmp_path / "transcoded.mp4"
    info = make_composite([late], output, **COMPOSITE)
    assert info.duration == pytest.approx(3.5, abs=0.1)
    summary = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(output)], capture_output=True, text=True
    ).stderr
    assert "start 0.5" not in summary  # the input's video stream says "start 0.520000"


def test_odd_file_names_are_not_taken_for_options_or_protocols(participants, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("-dash.mp4").write_bytes(participants[0].read_bytes())
    Path("http:colon.mp4").write_bytes(participants[1].read_bytes())
    info = make_composite(["-dash.mp4", "http:colon.mp4"], "-out.mp4", **COMPOSITE)
    assert info.duration == pytest.approx(5.0, abs=0.5)
    make_poster("-out.mp4", "-poster.jpg")
    assert Path("-poster.jpg").stat().st_size > 0


def test_without_a_font_the_participant_media_is_made_without_the_name(tmp_path, monkeypatch):
    monkeypatch.setattr("recordings.samples.font_file", lambda: None)
    path = tmp_path / "nameless.mp4"
    generate_participant_media(path, name="Eve", seconds=1, index=5, **SMALL)
    assert probe(path).has_video
