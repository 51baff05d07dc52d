"""Is make_composite() as fast as running its ffmpeg command by hand?

Generates 3 participant recordings of ~30 s (640x360, H.264/AAC), then times
``make_composite`` (probing the inputs, building the command, running ffmpeg with
stderr to a temp file, renaming, probing the result) against the very same command
from ``composite_command`` run directly with ``subprocess.run``. Each is run
``--runs`` times, interleaved so machine load drifts affect both alike; the
medians are compared. Target: the pipeline within 5 % of the hand-run command.

    .venv/bin/python bench/transcode.py [--seconds 30] [--runs 3] [--preset veryfast]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recordings.media import (  # noqa: E402
    composite_command,
    ffmpeg_exe,
    make_composite,
    probe,
)
from recordings.samples import generate_participant_media  # noqa: E402


def timed(job) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of child processes."""
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    job()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-transcode-") as tmp:
        work = Path(tmp)
        inputs = []
        started = time.perf_counter()
        for index, name in enumerate(["Alice", "Bob", "Carol"]):
            path = work / f"individual_recording_{index + 1}.mp4"
            # Slightly different lengths, as in a real session.
            generate_participant_media(path, name=name, seconds=args.seconds - index, index=index)
            inputs.append(path)
        print(f"generated {len(inputs)} inputs in {time.perf_counter() - started:.1f} s")

        size = {"width": args.width, "height": args.height, "preset": args.preset}
        hand_output = work / "by-hand.mp4"
        cmd = composite_command(inputs, hand_output, **size)
        results: dict[str, list[tuple[float, float]]] = {"by hand": [], "make_composite": []}
        jobs = {
            "by hand": lambda: subprocess.run(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True
            ),
            "make_composite": lambda: make_composite(inputs, work / "transcoded.mp4", **size),
        }
        for run in range(args.runs):
            # Alternate who goes first so a load change during a round hits both.
            order = list(jobs) if run % 2 == 0 else list(reversed(jobs))
            for name in order:
                results[name].append(timed(jobs[name]))
            print(f"run {run + 1}: " + ", ".join(
                f"{name} {results[name][-1][0]:.2f} s (cpu {results[name][-1][1]:.2f} s)"
                for name in jobs))  # fmt: skip
        info = probe(work / "transcoded.mp4")

        started = time.perf_counter()
        composite_command(inputs, hand_output, **size)
        build = time.perf_counter() - started
        started = time.perf_counter()
        reference = probe(hand_output)
        final_probe = time.perf_counter() - started
        assert abs(info.duration - reference.duration) < 0.1, (info, reference)
        hand = statistics.median(wall for wall, _ in results["by hand"])
        ours = statistics.median(wall for wall, _ in results["make_composite"])
        hand_cpu = statistics.median(cpu for _, cpu in results["by hand"])
        ours_cpu = statistics.median(cpu for _, cpu in results["make_composite"])
        ratio = ours / hand
        print(f"ffmpeg {ffmpeg_exe().rsplit('/', 1)[-1]}, {os.cpu_count()} CPUs "
              f"(load average {os.getloadavg()[0]:.1f}), "
              f"{args.width}x{args.height} {args.preset}, output {info.duration:.2f} s "
              f"({(work / 'transcoded.mp4').stat().st_size / 1e6:.1f} MB)")  # fmt: skip
        print(f"median by hand:        {hand:.2f} s wall, {hand_cpu:.2f} s cpu")
        print(f"median make_composite: {ours:.2f} s wall, {ours_cpu:.2f} s cpu")
        best_hand = min(wall for wall, _ in results["by hand"])
        best_ours = min(wall for wall, _ in results["make_composite"])
        print(f"best of {args.runs}: by hand {best_hand:.2f} s, make_composite {best_ours:.2f} s, "
              f"ratio {best_ours / best_hand:.3f}")  # fmt: skip
        print(f"cpu ratio: {ours_cpu / hand_cpu:.3f} (includes the probes)")
        print(f"fixed cost in make_composite: probing inputs + building the command "
              f"{build * 1000:.0f} ms, probing the result {final_probe * 1000:.0f} ms")  # fmt: skip
        print(f"ratio: {ratio:.3f} ({'within' if ratio <= 1.05 else 'OVER'} the 5 % target)")
        return 0 if ratio <= 1.05 else 1


if __name__ == "__main__":
    sys.exit(main())
