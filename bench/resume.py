"""Bytes sent again after a delivering process is SIGKILLed half way.

    .venv/bin/python bench/resume.py [--size-mb 256] [--kinds s3,azure,ftp,sftp,scp] [--at 0.5]
        [--delay-ms 400] [--repeat 3]

For each kind it starts the test server (moto, Azurite, pyftpdlib, OpenSSH) on
loopback behind a byte-counting TCP proxy (tests/servers/counting_proxy.py),
writes one file, and runs the destination class in a child process as the
engine does (upload with a ResumePoint whose saves are kept). Once ``--at``
of the file went through the proxy the child is SIGKILLed; a second child
starts from the last saved state and finishes the upload and the verify. It
prints what went through the proxy towards the server in all and how much of
that was more than the file: what the kill cost.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MiB = 1024 * 1024
# The child talks to loopback test servers only, with the development keys.
CHILD_ENV = {"PORTAL_TESTING": "1", "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",
             "DJANGO_SETTINGS_MODULE": "portal.settings"}  # fmt: skip


@dataclass
class Target:
    kind: str
    config: dict[str, Any]
    proxy: Any  # CountingProxy or ProxiedFTP: .upstream, .reset(), .close()
    stop: Callable[[], None]


def s3_target() -> Target:
    from tests.servers.counting_proxy import CountingProxy
    from tests.servers.moto_s3 import start_moto_s3

    server = start_moto_s3()
    proxy = CountingProxy(server.port).start()
    config = server.destination_config(root="bench", endpoint_url=f"http://127.0.0.1:{proxy.port}")
    return Target("s3", config, proxy, server.stop)


def azure_target() -> Target:
    from tests.servers.azurite import start_azurite
    from tests.servers.counting_proxy import CountingProxy

    server = start_azurite()
    proxy = CountingProxy(server.port).start()
    endpoint = f"http://127.0.0.1:{proxy.port}/{server.account_name}"
    return Target("azure", server.destination_config(root="bench", endpoint_url=endpoint),
                  proxy, server.stop)  # fmt: skip


def ftp_target() -> Target:
    import shutil

    from tests.servers.counting_proxy import ProxiedFTP
    from tests.servers.ftp import _start_server

    tmp = Path(tempfile.mkdtemp(prefix="bench-resume-ftp-"))
    server = _start_server(tmp, tls=False)
    proxy = ProxiedFTP(server.port, server.passive_ports)

    def stop() -> None:
        server.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    config = server.config(root="bench", host=ProxiedFTP.HOST, port=proxy.port)
    return Target("ftp", config, proxy, stop)


def ssh_target(kind: str = "sftp") -> Target:
    """OpenSSH's sshd (run as root: it creates its test users). The proxy
    counts the encrypted stream, so SSH framing and MACs (~0.2 %) count as
    re-sent bytes too."""
    import shutil

    from tests.servers.counting_proxy import CountingProxy
    from tests.servers.sshd import SHELL_USER, _prepare

    workdir = Path(tempfile.mkdtemp(prefix="bench-resume-sshd-"))
    server = _prepare(workdir)
    server.start()
    proxy = CountingProxy(server.port).start()

    def stop() -> None:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    config = server.config(SHELL_USER, root=str(server.upload_dir(SHELL_USER) / "bench"), port=proxy.port)
    return Target(kind, config, proxy, stop)


TARGETS: dict[str, Callable[[], Target]] = {
    "s3": s3_target, "azure": azure_target, "ftp": ftp_target, "sftp": ssh_target,
    # SCP has no offset: the second run sends the whole file again (and says so).
    "scp": lambda: ssh_target("scp"),
}  # fmt: skip


# -- the delivering process ----------------------------------------------------------------------
def child(kind: str) -> None:
    """Reads {config, path, size, sha256, state} on stdin; prints each saved
    state and note as a JSON line, then the verify result."""
    import django

    django.setup()
    from delivery.destinations import destination_for
    from delivery.destinations.base import LocalFile, ResumePoint

    job = json.load(sys.stdin)
    local = LocalFile(path=Path(job["path"]), size=job["size"], sha256=job["sha256"])

    def emit(**line: Any) -> None:
        print(json.dumps(line), flush=True)

    point = ResumePoint(job["state"], save=lambda s: emit(state=s), note=lambda n: emit(note=n))
    with destination_for(kind, job["config"]) as dest:
        # As the engine does: a file already complete at the destination is not sent.
        if not dest.verify(local, "room/conf/bench.bin"):
            dest.upload(local, "room/conf/bench.bin", lambda _n: None, point)
        emit(verified=dest.verify(local, "room/conf/bench.bin"))


def run_child(kind: str, job: dict, kill_when: Callable[[], bool] | None) -> tuple[list[dict], bool]:
    """Run one delivering process; SIGKILL it once ``kill_when()`` is true.
    Returns its JSON lines and whether it was killed."""
    env = {**os.environ, **CHILD_ENV}
    proc = subprocess.Popen([sys.executable, __file__, "--child", kind], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, cwd=ROOT, env=env)  # fmt: skip
    assert proc.stdin and proc.stdout
    proc.stdin.write(json.dumps(job).encode())
    proc.stdin.close()
    lines: list[dict] = []
    reader = threading.Thread(
        target=lambda: lines.extend(json.loads(x) for x in proc.stdout or [] if x.strip()),
        daemon=True,
    )
    reader.start()
    killed = False
    while proc.poll() is None:
        if kill_when is not None and kill_when():
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.005)
    proc.wait()
    reader.join(10)
    if not killed and proc.returncode:
        raise SystemExit(f"{kind}: the delivering process failed ({proc.returncode})")
    return lines, killed


def measure(target: Target, path: Path, size: int, sha256: str, at: float, delay: float) -> dict:
    job = {"config": target.config, "path": str(path), "size": size, "sha256": sha256, "state": {}}
    target.proxy.reset()
    reached: list[float] = []

    def kill_now() -> bool:
        # ``delay`` after the threshold: parts go out in bursts (each is hashed
        # first), so a kill right at a byte count tends to land between them.
        if not reached and target.proxy.upstream >= size * at:
            reached.append(time.monotonic())
        return bool(reached) and time.monotonic() - reached[0] >= delay

    first, killed = run_child(target.kind, job, kill_now)
    if not killed:
        raise SystemExit(f"{target.kind}: the upload ended before the kill")
    time.sleep(0.5)  # what the kernel had buffered reaches the server (and the count)
    at_kill = target.proxy.upstream
    saved = [line["state"] for line in first if "state" in line]
    job["state"] = saved[-1] if saved else {}
    started = time.perf_counter()
    second, _ = run_child(target.kind, job, None)
    seconds = time.perf_counter() - started
    total = target.proxy.upstream
    return {
        "kind": target.kind,
        "killed_at": at_kill,
        "total": total,
        "resent": total - size,
        "second_s": seconds,
        "verified": any(line.get("verified") for line in second),
        "notes": [line["note"] for line in second if "note" in line],
    }


def make_file(folder: Path, size: int) -> tuple[Path, str]:
    import hashlib

    path = folder / "bench.bin"
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        left = size
        while left:
            chunk = os.urandom(min(left, 4 * MiB))
            fh.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return path, digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--kinds", default="s3,azure,ftp")
    parser.add_argument("--at", type=float, default=0.5, help="kill after this share of the file")
    parser.add_argument("--delay-ms", type=int, default=0,
                        help="kill this long after the threshold (random from 0 to it per run)")
    parser.add_argument("--repeat", type=int, default=1, help="kills per kind")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        os.environ.update(CHILD_ENV)
        child(args.child)
        return
    size = args.size_mb * MiB
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} CPUs; file {args.size_mb} MiB; kill at {args.at:.0%}")  # fmt: skip
    print(f"{'kind':6} {'killed at':>10} {'sent in all':>12} {'re-sent':>9}  verified  note")
    with tempfile.TemporaryDirectory(prefix="bench-resume-") as tmp:
        path, sha256 = make_file(Path(tmp), size)
        for kind in args.kinds.split(","):
            for _ in range(args.repeat):
                target = TARGETS[kind]()
                delay = random.uniform(0, args.delay_ms / 1000)
                try:
                    r = measure(target, path, size, sha256, args.at, delay)
                finally:
                    target.proxy.close()
                    target.stop()
                    print(f"{kind:6} {r['killed_at'] / MiB:>6.1f} MiB {r['total'] / MiB:>8.1f} MiB "
                      f"{r['resent'] / MiB:>5.2f} MiB  {r['verified']!s:8}  "
                      f"{'; '.join(r['notes'])}", flush=True)  # fmt: skip
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
