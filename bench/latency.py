"""Latency and load of "upload early, announce once", through a running portal.

    .venv/bin/python bench/latency.py                 # both parts
    .venv/bin/python bench/latency.py --part latency --runs 5
    .venv/bin/python bench/latency.py --part load --sessions 20 --kinds s3,sftp

The portal runs as real processes (tests/servers/portal.py: gunicorn, the
delivery/webhook qcluster and the ``Q_CLUSTER_NAME=processing`` qcluster), on
its own SQLite database and DATA_DIR.
Sessions go through the ingest API as the media server sends them; the
``file_transfer`` webhooks arrive at tests/servers/webhook_receiver.py.

1. **latency**: a 2-participant, 4-second session (two recordings, chat,
   metadata) to a local folder taking every type; time from the answer to
   ``POST …/end`` to the arrival of its one complete ``file_transfer`` (the
   transcode included). Median of ``--runs``.
2. **load**: ``--sessions`` such sessions uploaded first, then all ended at
   once, to moto's S3 server and to OpenSSH's SFTP (the servers of
   bench/delivery.py). Prints the time from the ends to the last
   ``file_transfer``, the delivered bytes over the time any upload of the
   portal was under way (aggregate MB/s), and rclone copying the very same
   files to the same server with ``--transfers 4``.

Prints ``KEY=value`` lines at the end. Runs in a fresh clone after
``make test``'s installs (ffmpeg from imageio-ffmpeg, moto, OpenSSH, rclone).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
# The samples module reads settings only for ffmpeg's path; a throwaway key
# lets this run in a fresh clone with no .env.
os.environ.setdefault("SECRET_KEY", "bench-latency-" + "x" * 40)

from tests.delivery.portal_session import (  # noqa: E402
    PORTAL_ENV,
    PortalClient,
    file_transfers,
    make_media,
)
from tests.servers.portal import PortalProcesses  # noqa: E402
from tests.servers.webhook_receiver import WebhookReceiver  # noqa: E402

EVERY_TYPE = "individual,chat,metadata,transcoded"
SECRET_KEYS = ("access_key_id", "secret_access_key", "password")
MB = 1_000_000


def bench_delivery():
    """bench/delivery.py as a module (its servers and rclone settings); loaded
    by path because ``delivery`` is also the Django app's name."""
    spec = importlib.util.spec_from_file_location("bench_delivery", ROOT / "bench" / "delivery.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


class Portal:
    def __init__(self, workdir: Path):
        workdir.mkdir(parents=True, exist_ok=True)
        # Local folder destinations may write only under DELIVERY_LOCAL_ROOTS.
        env = {**PORTAL_ENV, "DELIVERY_LOCAL_ROOTS": str(workdir)}
        self.processes = PortalProcesses(extra_env=env)
        self.processes.setup()
        creds = self.processes.create_project("Latency")
        self.app_id = creds["APP_ID"]
        self.client = PortalClient(self.processes.public_url, creds["APP_ID"], creds["APP_KEY"])
        self.receiver = WebhookReceiver().start()
        self.processes.manage("webhook", "configure", self.app_id, "--url", self.receiver.url,
                              "--events", "file_transfer")  # fmt: skip
        self.workdir = workdir

    def start(self) -> None:
        self.processes.start_web()
        self.processes.start_worker()  # and the media-processing cluster

    def destination(self, kind: str, name: str, config: dict) -> None:
        """A destination taking every type, written straight to the database
        (the settings form would refuse loopback hosts without the guard's
        exemption and has no field for a test server's pinned key)."""
        plain = {k: v for k, v in config.items() if k not in SECRET_KEYS}
        secret = {k: v for k, v in config.items() if k in SECRET_KEYS}
        code = (
            "import json; from projects.models import Project;"
            "from delivery.models import DeliveryDestination as D;"
            f"p = Project.objects.get(app_id={self.app_id!r});"
            f"D.objects.filter(project=p).update(enabled=False);"
            f"D.objects.create(project=p, name={name!r}, kind={kind!r},"
            f" file_types={EVERY_TYPE.split(',')!r}, config=json.loads({json.dumps(plain)!r}),"
            f" secrets=json.loads({json.dumps(secret)!r}))"
        )
        self.processes.manage("shell", "-c", code)

    def query(self, code: str):
        out = self.processes.manage("shell", "-c", code).stdout
        return json.loads(out.strip().splitlines()[-1])

    def stop(self) -> None:
        self.receiver.close()
        self.processes.stop()


def wait_for_transfers(portal: Portal, conf_nums: list[str], timeout: float) -> dict[str, float]:
    """conf_num -> monotonic arrival of its file_transfer (polled every 20 ms)."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < len(conf_nums):
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(seen)} of {len(conf_nums)} file_transfer in {timeout} s")
        for body in file_transfers(portal.receiver):
            if body["conf_num"] in conf_nums:
                seen.setdefault(body["conf_num"], time.monotonic())
        time.sleep(0.02)
    return seen


def latency(args, workdir: Path) -> dict:
    media = make_media(workdir / "media", participants=2, seconds=args.seconds)
    portal = Portal(workdir)
    try:
        target = workdir / "local-dest"
        target.mkdir()
        portal.destination("local", "folder", {"path": str(target), "root": "recordings"})
        portal.start()
        room = portal.client.room()
        times = []
        for _ in range(args.runs):
            conf_num = portal.client.start(room)
            portal.client.upload(conf_num, media)
            ended = portal.client.end(conf_num)
            arrived = wait_for_transfers(portal, [conf_num], 120)[conf_num]
            times.append(arrived - ended)
            time.sleep(1)  # a second one would arrive now
            bodies = file_transfers(portal.receiver, conf_num)
            assert len(bodies) == 1 and len(bodies[0]["files"]) == 5, bodies
            print(f"latency run: {times[-1]:.2f} s", flush=True)
        return {"latency_runs": [round(t, 2) for t in times], "latency_median_s": median(times)}
    finally:
        portal.stop()


def busy_seconds(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of [start, end] intervals."""
    total, last_end = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end <= last_end:
            continue
        total += end - max(start, last_end)
        last_end = end
    return total


FILES_QUERY = """
import json
from django.core.files.storage import storages
from delivery.models import DeliveredFile
rows = DeliveredFile.objects.filter(delivery__destination__name=%r).select_related("recording_file")
store = storages["recordings"]
print(json.dumps([
    [store.path(f.recording_file.storage_path), f.recording_file.storage_path,
     f.recording_file.size, f.verified_at.timestamp() if f.verified_at else None, f.seconds]
    for f in rows
]))
"""


def load(args, workdir: Path, kind: str) -> dict:
    bench = bench_delivery()
    media = make_media(workdir / "media", participants=2, seconds=args.seconds)
    target = bench.TARGETS[kind]()
    portal = Portal(workdir)
    try:
        portal.destination(kind, kind, target.config)
        portal.start()
        room = portal.client.room()
        conf_nums = [portal.client.start(room) for _ in range(args.sessions)]
        for conf_num in conf_nums:
            portal.client.upload(conf_num, media)
        load_before = os.getloadavg()[0]
        barrier = threading.Barrier(len(conf_nums))

        def end(conf_num: str) -> None:
            barrier.wait()
            portal.client.end(conf_num)

        threads = [threading.Thread(target=end, args=(c,)) for c in conf_nums]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        arrivals = wait_for_transfers(portal, conf_nums, 600)
        total_s = max(arrivals.values()) - started
        for conf_num in conf_nums:
            assert len(file_transfers(portal.receiver, conf_num)) == 1, conf_num
        files = portal.query(FILES_QUERY % kind)
        size = sum(f[2] for f in files)
        busy = busy_seconds([(f[3] - f[4], f[3]) for f in files if f[3] and f[4] is not None])
        ours = {"files": len(files), "bytes": size, "busy_s": busy,
                "mb_s": size / MB / max(busy, 1e-3)}  # fmt: skip

        # The same sessions, all finished, to a second destination on the same
        # server (another root): the delivery alone, no transcode competing.
        again = {**target.config, "root": f"{target.config.get('root', '')}/again".lstrip("/")}
        portal.destination(kind, f"{kind}-again", again)
        t0 = time.monotonic()
        portal.processes.manage("shell", "-c", (
            "from projects.models import Project; from delivery.actions import deliveries;"
            f"deliveries.do_deliver_past_sessions(Project.objects.get(app_id={portal.app_id!r}),"
            " since=None, until=None, acting_user=None)"
        ))  # fmt: skip
        deadline = time.monotonic() + 600
        while len({b["conf_num"] for b in file_transfers(portal.receiver)
                   if b["destination"]["label"] == f"{kind}-again"}) < len(conf_nums):  # fmt: skip
            if time.monotonic() > deadline:
                raise SystemExit(f"{kind}-again: not all delivered in 600 s")
            time.sleep(0.02)
        alone_s = time.monotonic() - t0

        # rclone: the same files, from the portal's store, to the same server.
        listing = workdir / f"{kind}-files.txt"
        listing.write_text("".join(f"{f[1]}\n" for f in files))
        store_root = files[0][0][: -len(files[0][1])]
        env = target.rclone_environment()
        argv = [bench.RCLONE, "copy", "--transfers", "4", "--files-from-raw", str(listing),
                "--ignore-times", store_root, f"{target.rclone_path}/load", *target.rclone_flags]  # fmt: skip
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True)
        rclone_s = time.perf_counter() - t0
        return {
            "kind": kind, "sessions": len(conf_nums), "end_to_last_file_transfer_s": total_s,
            "ours": ours, "alone_s": alone_s, "alone_mb_s": size / MB / alone_s,
            "rclone_s": rclone_s, "rclone_mb_s": size / MB / rclone_s,
            "ratio": ours["mb_s"] / (size / MB / rclone_s), "load_before": load_before,
        }  # fmt: skip
    finally:
        portal.stop()
        target.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=["latency", "load", "both"], default="both")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--kinds", default="s3,sftp")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()}", flush=True)
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        workdir = Path(tmp)
        if args.part in ("latency", "both"):
            results.update(latency(args, workdir / "latency"))
            print(f"LATENCY_MEDIAN_S={results['latency_median_s']:.2f} "
                  f"RUNS={results['latency_runs']}", flush=True)  # fmt: skip
        if args.part in ("load", "both"):
            for kind in args.kinds.split(","):
                r = load(args, workdir / kind, kind)
                results[kind] = r
                print(
                    f"{kind.upper()}_SESSIONS={r['sessions']} "
                    f"{kind.upper()}_END_TO_LAST_FILE_TRANSFER_S={r['end_to_last_file_transfer_s']:.1f} "
                    f"{kind.upper()}_FILES={r['ours']['files']} "
                    f"{kind.upper()}_MB={r['ours']['bytes'] / MB:.1f} "
                    f"{kind.upper()}_BUSY_S={r['ours']['busy_s']:.2f} "
                    f"{kind.upper()}_MB_S={r['ours']['mb_s']:.2f} "
                    f"{kind.upper()}_RCLONE_MB_S={r['rclone_mb_s']:.2f} "
                    f"{kind.upper()}_RATIO={r['ratio']:.2f} "
                    f"{kind.upper()}_ALONE_S={r['alone_s']:.2f} "
                    f"{kind.upper()}_ALONE_MB_S={r['alone_mb_s']:.2f} "
                    f"{kind.upper()}_ALONE_RATIO={r['alone_mb_s'] / r['rclone_mb_s']:.2f}",
                    flush=True,
                )
                shutil.rmtree(workdir / kind, ignore_errors=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
