"""Delivery end to end, through a running portal, against rclone.

    .venv/bin/python bench/end_to_end.py                      # SFTP, 512 MiB, 3 runs
    .venv/bin/python bench/end_to_end.py --kinds sftp,scp --size-mb 1024 --repeat 3

The portal runs as real processes (tests/servers/portal.py: gunicorn, the
delivery/webhook qcluster, the ``Q_CLUSTER_NAME=processing`` qcluster) on its
own SQLite database and DATA_DIR; the destination is the test server of
bench/delivery.py (OpenSSH's sshd for ``sftp`` and ``scp``), the
``file_transfer`` webhook goes to tests/servers/webhook_receiver.py.

Each run makes a session with one individual recording of ``--size-mb`` (one
file of random bytes, hard-linked into the recording store: the ingest API
would refuse it as media, and uploading it is not what is measured), ends it
through the ingest API (``POST …/end``) and times the answer to the arrival of
its one ``file_transfer`` webhook (polled every 20 ms). In between the portal
hands the file to delivery at session end, uploads and verifies it (sha256 on
the server), while processing fails at once on the random bytes (so the
``file_transfer`` lists the transcode as missing), writes ``manifest.json``
and sends the webhook: every broker hop is in the figure. Then rclone copies
the same file to the same server (``copyto``, as bench/delivery.py), and the
two alternate ``--repeat`` times; a first small session warms the worker up
and is not counted (a running portal's workers have imported their modules).

rclone runs twice per round: as bench/delivery.py runs it (no check after the
upload) and with its default check (``md5sum`` over ssh afterwards), the closer
match to the portal, which verifies with the server's ``sha256sum``.

Prints each run, the medians, their ratio (rclone's time over ours) and the
peak RSS (VmHWM) of every process of the delivery qcluster, read after the
last run; ``KEY=value`` lines at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MiB = 1024 * 1024
SSH_KINDS = ("sftp", "scp")

SESSION = """
import json, os
from django.core.files.storage import storages
from projects.models import Project, Room
from recordings.models import RecordingFile, Session
project = Project.objects.get(app_id={app_id!r})
room = Room.objects.filter(project=project).first() or Room.objects.create(project=project, name="E2E")
session = Session.objects.create(project=project, room=room)
storage_path = f"{{project.app_id}}/{{room.room_id}}/{{session.conf_num}}/cam.webm"
path = storages["recordings"].path(storage_path)
os.makedirs(os.path.dirname(path), exist_ok=True)
os.link({source!r}, path)
RecordingFile.objects.create(
    session=session, project=project, type=RecordingFile.Type.INDIVIDUAL, name="cam.webm",
    participant="P0", size={size}, sha256={sha256!r}, storage_path=storage_path,
)
print(json.dumps({{"conf_num": session.conf_num, "room_id": room.room_id}}))
"""

# Where the time went, from the portal's own rows (seconds after session end).
TIMELINE = """
import json
from delivery.models import DeliveredFile, Delivery
from webhooks.models import WebhookAttempt
from recordings.models import Session
s = Session.objects.get(conf_num={conf_num!r})
d = Delivery.objects.get(session=s)
f = DeliveredFile.objects.get(delivery=d)
a = WebhookAttempt.objects.filter(message__event_type="file_transfer",
                                  message__payload__conf_num=s.conf_num).order_by("at").first()
t = lambda when: round((when - s.ended_at).total_seconds(), 2) if when else None
print(json.dumps({{
    "claimed": t(d.started_at),
    "upload_s": round(f.seconds, 2) if f.seconds else None,
    "connected+uploaded+verified": t(f.verified_at),
    "processing_failed": t(s.processed_at) if s.state == "failed" else None,
    "delivered": t(d.finished_at), "webhook_sent": t(a.at if a else None), "runs": d.attempts,
    "openssh_lanes": any(e.get("event") == "lanes" for e in d.log),
}}))
"""


def load_bench(name: str):
    """A sibling bench script as a module (``delivery`` is also the Django
    app's name, so they are loaded by path)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def peak_rss_mb(procs) -> dict[int, float]:
    """VmHWM (MB) of each live process of these process trees."""
    import psutil

    peaks = {}
    for proc in procs:
        if proc.poll() is not None:
            continue
        root = psutil.Process(proc.pid)
        for member in [root, *root.children(recursive=True)]:
            try:
                with open(f"/proc/{member.pid}/status") as fh:
                    for line in fh:
                        if line.startswith("VmHWM:"):
                            peaks[member.pid] = int(line.split()[1]) / 1024
            except OSError:
                pass
    return peaks


def one_session(portal, source: Path, size: int, sha256: str) -> str:
    code = SESSION.format(app_id=portal.app_id, source=str(source), size=size, sha256=sha256)
    return json.loads(portal.processes.manage("shell", "-c", code).stdout.strip().splitlines()[-1])[
        "conf_num"
    ]


def run_portal(latency, portal, source: Path, size: int, sha256: str) -> float:
    conf_num = one_session(portal, source, size, sha256)
    ended = portal.client.end(conf_num)
    arrived = latency.wait_for_transfers(portal, [conf_num], 1800)[conf_num]
    bodies = latency.file_transfers(portal.receiver, conf_num)
    assert len(bodies) == 1, f"{len(bodies)} file_transfer webhooks for {conf_num}"
    files = bodies[0]["files"]
    assert [(f["name"], f["size"], f["sha256"]) for f in files] == [("cam.webm", size, sha256)], files
    timeline = json.loads(
        portal.processes.manage("shell", "-c", TIMELINE.format(conf_num=conf_num)).stdout.strip().splitlines()[-1]
    )
    print("      timeline (s after end): " + ", ".join(f"{k} {v}" for k, v in timeline.items()), flush=True)
    return arrived - ended


def bench_kind(args, kind: str, workdir: Path, path: Path, sha256: str, warm: tuple) -> dict:
    latency = load_bench("latency")
    delivery = load_bench("delivery")
    size = path.stat().st_size
    target = delivery.TARGETS[kind]()
    portal = latency.Portal(workdir / kind)
    try:
        portal.destination(kind, kind, target.config)
        portal.start()
        run_portal(latency, portal, *warm)
        ours, theirs, checked = [], [], []
        # rclone as bench/delivery.py runs it (no check after the upload), and
        # with its default check (md5sum over ssh), closer to our verify (the
        # server's SHA-256 of the whole file, inside the portal's figure).
        rclone_env = {k: v for k, v in target.rclone_env.items() if not k.endswith("_DISABLE_HASHCHECK")}
        hashing = dataclasses.replace(target, rclone_env=rclone_env)
        started = time.perf_counter()
        with open(path, "rb") as fh:
            hashlib.file_digest(fh, "sha256")
        print(f"{kind:5} sha256 of the file on this machine: {time.perf_counter() - started:.2f} s "
              "(the server's verify does the same work)", flush=True)  # fmt: skip
        for _ in range(args.repeat):
            # Each timed run from empty upload folders, as in bench/delivery.py.
            target.clear()
            ours.append(run_portal(latency, portal, path, size, sha256))
            print(f"{kind:5} portal: {size / MiB / ours[-1]:6.1f} MB/s ({ours[-1]:.2f} s, session end "
                  f"→ file_transfer), load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
            if not args.skip_rclone:
                target.clear()
                theirs.append(delivery.run_rclone(target, path)["seconds"])
                target.clear()
                checked.append(delivery.run_rclone(hashing, path)["seconds"])
                print(f"{kind:5} rclone: {size / MiB / theirs[-1]:6.1f} MB/s ({theirs[-1]:.2f} s); "
                      f"with its hash check {size / MiB / checked[-1]:6.1f} MB/s ({checked[-1]:.2f} s)",
                      flush=True)  # fmt: skip
        peaks = peak_rss_mb(portal.processes.workers)
        processing = peak_rss_mb(portal.processes.processing_workers)
        result = {
            "kind": kind, "size_mib": size / MiB, "portal_s": ours, "rclone_s": theirs,
            "portal_mb_s": size / MiB / median(ours),
            "worker_peak_rss_mb": max(peaks.values(), default=0.0),
            "processing_peak_rss_mb": max(processing.values(), default=0.0),
        }  # fmt: skip
        if theirs:
            result["rclone_mb_s"] = size / MiB / median(theirs)
            result["ratio"] = median(theirs) / median(ours)
            result["rclone_checked_mb_s"] = size / MiB / median(checked)
            result["ratio_checked"] = median(checked) / median(ours)
        return result
    finally:
        portal.stop()
        target.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=512, help="the recording's size in MiB")
    parser.add_argument("--kinds", default="sftp", help=f"comma-separated: {', '.join(SSH_KINDS)}")
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs of each")
    parser.add_argument("--skip-rclone", action="store_true")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if set(kinds) - set(SSH_KINDS):
        parser.error(f"kinds: {', '.join(SSH_KINDS)}")
    delivery = load_bench("delivery")
    missing = delivery.missing_tools(kinds, need_rclone=not args.skip_rclone)
    if missing:
        raise SystemExit("bench/end_to_end.py needs " + "; ".join(missing) + " (`make bench` prepares them)")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        workdir = Path(tmp)
        path, sha256 = delivery.make_file(workdir, args.size_mb * MiB)
        (workdir / "warm").mkdir()
        warm_path, warm_sha256 = delivery.make_file(workdir / "warm", MiB)
        for kind in kinds:
            r = bench_kind(args, kind, workdir, path, sha256, (warm_path, MiB, warm_sha256))
            line = (f"{kind.upper()}_E2E_MB_S={r['portal_mb_s']:.1f} "
                    f"{kind.upper()}_E2E_S={median(r['portal_s']):.2f} "
                    f"{kind.upper()}_WORKER_PEAK_RSS_MB={r['worker_peak_rss_mb']:.0f} "
                    f"{kind.upper()}_PROCESSING_PEAK_RSS_MB={r['processing_peak_rss_mb']:.0f}")  # fmt: skip
            if "ratio" in r:
                line += (f" {kind.upper()}_RCLONE_MB_S={r['rclone_mb_s']:.1f}"
                         f" {kind.upper()}_E2E_RATIO={r['ratio']:.2f}"
                         f" {kind.upper()}_RCLONE_CHECKED_MB_S={r['rclone_checked_mb_s']:.1f}"
                         f" {kind.upper()}_E2E_RATIO_CHECKED={r['ratio_checked']:.2f}")  # fmt: skip
            print(line, flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
