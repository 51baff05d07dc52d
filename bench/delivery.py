"""Delivery throughput and memory: our destination classes against rclone.

    .venv/bin/python bench/delivery.py --size-mb 1024 --kinds s3,azure,sftp,ftp,ftps

For each kind it starts a real server on loopback (moto for S3, Azurite for
Azure Blob, as root OpenSSH sshd for SFTP and vsftpd for FTP/FTPS,
bench/vsftpd.py), writes one file of random bytes, then

1. uploads it through the destination class (upload + verify, with the
   progress callback) in a child process, whose peak RSS is read from wait4();
2. copies the same file to the same server with rclone;

and prints MB/s of both, their ratio and the peak RSS of the delivering
process. Both clients talk to the same server, so the figures compare
clients, not clouds.

Method: ours and rclone alternate (``--repeat``) and each timed run starts from
the same server state: both upload folders are emptied just before it, outside
the timing. Without that, rclone's run overwrote its own previous file (the
server reuses the pages it frees at once) while ours wrote a new temporary file
beside the previous copy (the server's page cache grows into memory this
virtual machine has not touched for a while, which its host backs only on first
touch: up to 2x the kernel time per byte in the server's writer, measured with
``perf``; bench/README.md, "Each run from an empty folder").

Small files (``--files N``, e.g. ``--size-mb 1 --files 50``): the child makes
N deliveries of one file each, one after the other as one worker thread does
(connect, upload, verify, close), timed from the first connect to the last
close; rclone copies the N files in one ``rclone copy`` (its default 4
transfers). ``--fresh-clients`` makes every delivery build its own S3 client,
as before clients were reused (delivery/destinations/clients.py).

Adding a kind (FTP, SFTP, ...) = one ``<kind>_target()`` function returning a
``Target`` and one line in ``TARGETS``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MiB = 1024 * 1024
RCLONE = "/usr/bin/rclone"


@dataclass
class Target:
    kind: str
    config: dict[str, Any] = field(repr=False)
    rclone_env: dict[str, str] = field(repr=False)
    rclone_path: str
    stop: Callable[[], None]
    rclone_flags: list[str] = field(default_factory=list)
    # Empties both upload folders on the server before each timed run (see
    # "Method" in the module's doc); None: `rclone delete` of their parent.
    clear_folders: Callable[[], None] | None = None

    def rclone_environment(self) -> dict[str, str]:
        """The environment rclone runs with: this target's remote and nothing of
        ours (AWS_CA_BUNDLE, set on some machines, makes its S3 backend refuse
        to start)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
        env.update(self.rclone_env, RCLONE_CONFIG="/dev/null")
        return env

    def clear(self) -> None:
        if self.clear_folders is not None:
            self.clear_folders()
            return
        parent = self.rclone_path.rsplit("/", 1)[0]
        subprocess.run([RCLONE, "delete", parent], env=self.rclone_environment(), capture_output=True, check=True)


def emptier(*folders: Path) -> Callable[[], None]:
    """Removes what is inside ``folders`` (they stay: a server may need them)."""

    def clear() -> None:
        for folder in folders:
            for entry in folder.iterdir() if folder.is_dir() else ():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()

    return clear


def s3_target() -> Target:
    from tests.servers.moto_s3 import start_moto_s3

    server = start_moto_s3()
    env = {
        "RCLONE_CONFIG_BENCHS3_TYPE": "s3",
        "RCLONE_CONFIG_BENCHS3_PROVIDER": "Other",
        "RCLONE_CONFIG_BENCHS3_ENDPOINT": server.endpoint_url,
        "RCLONE_CONFIG_BENCHS3_REGION": server.region,
        "RCLONE_CONFIG_BENCHS3_ACCESS_KEY_ID": server.access_key_id,
        "RCLONE_CONFIG_BENCHS3_SECRET_ACCESS_KEY": server.secret_access_key,
        "RCLONE_CONFIG_BENCHS3_FORCE_PATH_STYLE": "true",
        "RCLONE_CONFIG_BENCHS3_NO_CHECK_BUCKET": "true",
        # After a multipart upload rclone HEADs ?versionId=null, which moto answers
        # with 400 on an unversioned bucket; skip that check (it only costs rclone).
        "RCLONE_CONFIG_BENCHS3_NO_HEAD": "true",
    }
    return Target(
        kind="s3",
        config=server.destination_config(root="bench/ours"),
        rclone_env=env,
        rclone_path=f"benchs3:{server.bucket}/bench/rclone",
        stop=server.stop,
    )


def azure_target() -> Target:
    from tests.servers.azurite import start_azurite

    server = start_azurite()
    # rclone 1.60 builds https://<account>.<endpoint> from account + endpoint, so
    # reaching Azurite on a free port goes through a container SAS URL instead.
    env = {
        "RCLONE_CONFIG_BENCHAZ_TYPE": "azureblob",
        "RCLONE_CONFIG_BENCHAZ_SAS_URL": server.container_sas_url(hours=6),
    }
    return Target(
        kind="azure",
        config=server.destination_config(root="bench/ours"),
        rclone_env=env,
        rclone_path=f"benchaz:{server.container}/bench/rclone",
        stop=server.stop,
    )


def _obscure(secret: str) -> str:
    return subprocess.run(
        [RCLONE, "obscure", "-"], input=secret, capture_output=True, text=True, check=True
    ).stdout.strip()


def sftp_target(kind: str = "sftp") -> Target:
    from tests.servers.sshd import SHELL_USER, _prepare

    workdir = Path(tempfile.mkdtemp(prefix="bench-sshd-"))
    server = _prepare(workdir)
    server.start()
    uploads = server.upload_dir(SHELL_USER)

    def stop() -> None:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    env = {
        "RCLONE_CONFIG_BENCHSFTP_TYPE": "sftp",
        "RCLONE_CONFIG_BENCHSFTP_HOST": server.host,
        "RCLONE_CONFIG_BENCHSFTP_PORT": str(server.port),
        "RCLONE_CONFIG_BENCHSFTP_USER": SHELL_USER,
        "RCLONE_CONFIG_BENCHSFTP_PASS": _obscure(server.passwords[SHELL_USER]),
        # Our figure is the upload alone (verify is timed apart); spare rclone its
        # md5sum over ssh after the upload too.
        "RCLONE_CONFIG_BENCHSFTP_DISABLE_HASHCHECK": "true",
    }
    return Target(
        kind=kind,
        config=server.config(SHELL_USER, root=str(uploads / "ours")),
        rclone_env=env,
        rclone_path=f"benchsftp:{uploads}/rclone",
        stop=stop,
        clear_folders=emptier(uploads / "ours", uploads / "rclone"),
    )


def _ftp_target(tls: bool) -> Target:
    from bench.vsftpd import start_vsftpd

    # vsftpd: one C process per session, and it takes REST past a file's end,
    # which our lanes need (delivery/destinations/ftp/lanes.py); rclone's
    # uploads never use REST. Paths are relative to the account's home.
    server = start_vsftpd(tls)
    ours, theirs = server.home / "bench" / "ours", server.home / "bench" / "rclone"
    for folder in (ours, theirs):
        # rclone 1.60 cannot start on a missing folder ("501 No such directory").
        folder.mkdir(parents=True)
        shutil.chown(folder, server.username, server.username)
        shutil.chown(folder.parent, server.username, server.username)

    name = "BENCHFTPS" if tls else "BENCHFTP"
    env = {
        f"RCLONE_CONFIG_{name}_TYPE": "ftp",
        f"RCLONE_CONFIG_{name}_HOST": server.host,
        f"RCLONE_CONFIG_{name}_PORT": str(server.port),
        f"RCLONE_CONFIG_{name}_USER": server.username,
        f"RCLONE_CONFIG_{name}_PASS": _obscure(server.password),
    }
    if tls:
        env[f"RCLONE_CONFIG_{name}_EXPLICIT_TLS"] = "true"
        env[f"RCLONE_CONFIG_{name}_NO_CHECK_CERTIFICATE"] = "true"
        # Over TLS 1.3 rclone 1.60's data connections to vsftpd 3.0.3 fail
        # ("remote error: tls: illegal parameter"; ftplib's do not), as with
        # other FTP servers (rclone/rclone#5651, which added this option).
        env[f"RCLONE_CONFIG_{name}_DISABLE_TLS13"] = "true"
    return Target(
        kind="ftp",
        config=server.config(root="bench/ours"),
        rclone_env=env,
        rclone_path=f"{name.lower()}:bench/rclone",
        stop=server.stop,
        clear_folders=emptier(ours, theirs),
    )


def ftp_target() -> Target:
    return _ftp_target(tls=False)


def ftps_target() -> Target:
    return _ftp_target(tls=True)


TARGETS: dict[str, Callable[[], Target]] = {
    "s3": s3_target,
    "azure": azure_target,
    "sftp": sftp_target,
    # SCP against rclone's SFTP to the same sshd: rclone has no scp backend.
    "scp": lambda: sftp_target("scp"),
    "ftp": ftp_target,
    "ftps": ftps_target,
}


# -- the delivering process ------------------------------------------------------------
def child(kind: str, tuning: dict[str, int]) -> None:
    """Runs in a fresh interpreter so its peak RSS is the delivery's alone.
    Reads {config, path, size, sha256} on stdin, prints a JSON result."""

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    # A fresh clone has no secrets in DATA_DIR: the bench needs no database and
    # no stored credential, so the settings' fixed development keys do. The test
    # servers listen on loopback, which the egress guard refuses unless allowed.
    os.environ.setdefault("PORTAL_TESTING", "1")
    os.environ.setdefault("OUTBOUND_ALLOWED_NETWORKS", "127.0.0.0/8")
    import django

    django.setup()
    from delivery.destinations import destination_for
    from delivery.destinations.base import LocalFile

    job = json.load(sys.stdin)
    fresh_clients = tuning.pop("fresh_clients", 0)
    if fresh_clients:
        import boto3

        from delivery.destinations.s3 import destination as s3

        # What every delivery did before clients were reused: a new boto3
        # session (the S3 model parsed again) and client per delivery.
        s3.shared_client = lambda _key, make: make()  # type: ignore[assignment]
        s3.boto3_client = lambda service, **kw: boto3.session.Session().client(service, **kw)  # type: ignore[assignment]
    if job.get("files"):
        small_files(kind, job, tuning)
        return
    local = LocalFile(path=Path(job["path"]), size=job["size"], sha256=job["sha256"])
    dest = destination_for(kind, job["config"])
    for name, value in tuning.items():
        setattr(dest, name, value)
    sent = 0

    def progress(count: int) -> None:
        nonlocal sent
        sent += count

    baseline = HighWaterMark.read_pid("self")
    lanes_peak = [0]  # the largest OpenSSH lane's (ssh process) peak RSS, kB
    watching = threading.Event()

    def watch_lanes() -> None:
        import psutil

        me = psutil.Process()
        while not watching.wait(0.05):
            for lane in me.children():
                lanes_peak[0] = max(lanes_peak[0], HighWaterMark.read_pid(lane.pid) or 0)

    watcher = threading.Thread(target=watch_lanes, daemon=True)
    watcher.start()
    with dest:
        started = time.perf_counter()
        dest.upload(local, "room/conf/bench.bin", progress)
        uploaded = time.perf_counter()
        watching.set()
        verified = dest.verify(local, "room/conf/bench.bin")
        done = time.perf_counter()
    print(
        json.dumps(
            {
                "upload_s": uploaded - started,
                "verify_s": done - uploaded,
                "verified": verified,
                "progress_bytes": sent,
                "baseline_rss_kb": baseline,
                "lanes": getattr(dest, "lanes_used", 0),
                "lane_peak_rss_kb": lanes_peak[0],
            }
        )
    )


def small_files(kind: str, job: dict, tuning: dict[str, int]) -> None:
    """One delivery per file, one after the other (see the module's doc)."""
    from delivery.destinations import destination_for
    from delivery.destinations.base import LocalFile

    baseline = HighWaterMark.read_pid("self")
    sent, verified = 0, True

    def progress(count: int) -> None:
        nonlocal sent
        sent += count

    started = time.perf_counter()
    for index, (path, sha256) in enumerate(job["files"]):
        local = LocalFile(path=Path(path), size=job["size"], sha256=sha256)
        dest = destination_for(kind, job["config"])
        for name, value in tuning.items():
            setattr(dest, name, value)
        with dest:
            remote = f"room/conf{index}/{Path(path).name}"
            dest.upload(local, remote, progress)
            verified = dest.verify(local, remote) and verified
    total = time.perf_counter() - started
    print(json.dumps({"upload_s": total, "verify_s": 0.0, "verified": verified,
                      "progress_bytes": sent, "baseline_rss_kb": baseline}))  # fmt: skip


class HighWaterMark:
    """The peak RSS of a child process, read from its own VmHWM in
    /proc/<pid>/status while it runs. (wait4's ru_maxrss is not used: on
    Linux it also counts the high-water mark of the forked copy of this
    benchmark process before exec, which would floor every figure at the
    benchmark's own size.)"""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak_kb = 0
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _read(self) -> int | None:
        return self.read_pid(self.pid)

    @staticmethod
    def read_pid(pid: int | str) -> int | None:
        """VmHWM in kB; None once the process is gone."""
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return 0

    def _watch(self) -> None:
        while (kb := self._read()) is not None:
            self.peak_kb = max(self.peak_kb, kb)
            time.sleep(0.02)

    def result(self) -> int:
        self._thread.join(timeout=1)
        return self.peak_kb


def run_ours(
    target: Target, path: Path, size: int, sha256: str, tuning: dict[str, int],
    files: list[tuple[str, str]] | None = None,
) -> dict:
    job = json.dumps({"config": target.config, "path": str(path), "size": size, "sha256": sha256,
                      "files": files or []})  # fmt: skip
    argv = [sys.executable, __file__, "--child", target.kind, "--tuning", json.dumps(tuning)]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT)
    hwm = HighWaterMark(proc.pid)
    assert proc.stdin and proc.stdout
    proc.stdin.write(job.encode())
    proc.stdin.close()
    out = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{target.kind}: the delivering process failed ({proc.returncode})")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["peak_rss_kb"] = hwm.result()
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    return result


def run_rclone(target: Target, path: Path) -> dict:
    env = target.rclone_environment()
    if path.is_dir():  # small files: the folder's files in one run, 4 transfers at once
        argv = [RCLONE, "copy", "--ignore-times", str(path), f"{target.rclone_path}/{path.name}"]
    else:
        argv = [RCLONE, "copyto", "--ignore-times", str(path), f"{target.rclone_path}/{path.name}"]
    argv += target.rclone_flags
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    hwm = HighWaterMark(proc.pid)
    stderr = proc.stderr.read() if proc.stderr else b""
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{target.kind}: rclone failed: {stderr.decode()[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return {"seconds": seconds, "peak_rss_kb": hwm.result(), "cpu_s": cpu}


def make_file(folder: Path, size: int) -> tuple[Path, str]:
    path = folder / "bench.bin"
    digest = hashlib.sha256()
    block = os.urandom(4 * MiB)  # distinct 4 MiB blocks: cheap to write, still incompressible
    with open(path, "wb") as fh:
        left, n = size, 0
        while left:
            chunk = (n.to_bytes(8, "big") + block[8:])[: min(left, len(block))]
            fh.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
            n += 1
    return path, digest.hexdigest()


def make_small_files(folder: Path, size: int, count: int) -> list[tuple[str, str]]:
    """``count`` distinct files of ``size`` bytes; [(path, sha256)]."""
    folder.mkdir()
    made = []
    for index in range(count):
        data = index.to_bytes(8, "big") + os.urandom(max(size - 8, 0))
        path = folder / f"small-{index:04d}.bin"
        path.write_bytes(data[:size])
        made.append((str(path), hashlib.sha256(data[:size]).hexdigest()))
    return made


def missing_tools(kinds: list[str], need_rclone: bool) -> list[str]:
    """What a fresh clone lacks for these kinds, said before any server starts."""
    missing = []
    if need_rclone and not os.access(RCLONE, os.X_OK):
        missing.append(f"rclone at {RCLONE} (Debian package rclone)")
    if "azure" in kinds and not (ROOT / "node_modules" / ".bin" / "azurite-blob").exists():
        missing.append("Azurite (npm install)")
    ssh = {"sftp", "scp"} & set(kinds)
    if ssh and not os.access("/usr/sbin/sshd", os.X_OK):
        missing.append("/usr/sbin/sshd (Debian package openssh-server)")
    if ssh and os.geteuid() != 0:
        missing.append("root for the sftp/scp kinds (the test sshd creates its local test users)")
    ftp = {"ftp", "ftps"} & set(kinds)
    if ftp and not os.access("/usr/sbin/vsftpd", os.X_OK):
        missing.append("/usr/sbin/vsftpd (Debian package vsftpd)")
    if ftp and os.geteuid() != 0:
        missing.append("root for the ftp/ftps kinds (bench/vsftpd.py creates a local account)")
    return missing


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=float, default=1024, help="file size in MiB")
    parser.add_argument(
        "--files", type=int, default=1, help="small files: N deliveries of one file each"
    )
    parser.add_argument(
        "--fresh-clients", action="store_true",
        help="a new S3 client per delivery, as before clients were reused",
    )  # fmt: skip
    parser.add_argument(
        "--kinds", default="s3,azure", help=f"comma-separated: {', '.join(TARGETS)}"
    )
    parser.add_argument("--concurrency", type=int, help="override max_concurrency")
    parser.add_argument("--part-mb", type=int, help="override the S3 part / Azure block size (MiB)")
    parser.add_argument("--streams", type=int, help="override SFTP streams (channels) per file")
    parser.add_argument(
        "--request-packets", type=int, help="override SSH packets per SFTP write (1 = 32 KiB writes)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="alternating runs of each")
    parser.add_argument("--skip-rclone", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--tuning", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, json.loads(args.tuning))
        return

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = set(kinds) - set(TARGETS)
    if unknown:
        parser.error(
            f"unknown kinds {', '.join(sorted(unknown))}; choose from {', '.join(TARGETS)}"
        )
    missing = missing_tools(kinds, need_rclone=not args.skip_rclone)
    if missing:
        raise SystemExit("bench/delivery.py needs " + "; ".join(missing) + " (`make bench` prepares them)")
    size = int(args.size_mb * MiB)
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmp:
        small: list[tuple[str, str]] = []
        if args.files > 1:
            path, sha256 = Path(tmp) / "small", ""
            small = make_small_files(path, size, args.files)
            print(f"files: {args.files} x {args.size_mb} MiB, one delivery each, "
                  f"cpus: {os.cpu_count()}, rclone: {RCLONE}")  # fmt: skip
        else:
            path, sha256 = make_file(Path(tmp), size)
            print(f"file: {args.size_mb} MiB, cpus: {os.cpu_count()}, rclone: {RCLONE}")
        total = size * max(args.files, 1)
        for kind in kinds:
            tuning = {"fresh_clients": 1} if args.fresh_clients else {}
            if args.concurrency:
                tuning["max_concurrency"] = args.concurrency
            if args.streams:
                tuning["streams"] = args.streams
            if args.request_packets:
                tuning["request_packets"] = args.request_packets
            if args.part_mb:
                names = (
                    ("multipart_chunksize", "multipart_threshold")
                    if kind == "s3"
                    else ("max_block_size", "max_single_put_size")
                )
                tuning.update({name: args.part_mb * MiB for name in names})
            target = TARGETS[kind]()
            try:
                ours_rates, their_rates, rss = [], [], []
                # Alternate ours and rclone so a busy machine hurts both alike.
                for _ in range(args.repeat):
                    target.clear()
                    ours = run_ours(target, path, size, sha256, tuning, small)
                    ours_rates.append(total / MiB / ours["upload_s"])
                    rss.append(ours["peak_rss_kb"] / 1024)
                    checked = (
                        f"connect + upload + verify of each, ok={ours['verified']}"
                        if small else f"verify {ours['verify_s']:.1f} s ok={ours['verified']}"
                    )
                    line = (
                        f"{kind:6} ours:   {ours_rates[-1]:6.1f} MB/s ({ours['upload_s']:.1f} s), "
                        f"{checked}, "
                        f"peak RSS {rss[-1]:.0f} MB (after imports {ours['baseline_rss_kb'] / 1024:.0f} MB), "
                        f"CPU {ours['cpu_s']:.1f} s"
                    )
                    if ours.get("lanes") and kind in ("sftp", "scp"):
                        line += (f", over {ours['lanes']} OpenSSH lanes "
                                 f"(each ssh's peak RSS {ours['lane_peak_rss_kb'] / 1024:.0f} MB)")  # fmt: skip
                    elif ours.get("lanes"):
                        line += f", over {ours['lanes']} more sessions"
                    if ours["progress_bytes"] != total:
                        line += f" progress reported {ours['progress_bytes']} bytes!"
                    print(line, flush=True)
                    if not args.skip_rclone:
                        target.clear()
                        theirs = run_rclone(target, path)
                        their_rates.append(total / MiB / theirs["seconds"])
                        print(
                            f"{kind:6} rclone: {their_rates[-1]:6.1f} MB/s ({theirs['seconds']:.1f} s), "
                            f"peak RSS {theirs['peak_rss_kb'] / 1024:.0f} MB, CPU {theirs['cpu_s']:.1f} s",
                            flush=True,
                        )
                summary = f"{kind:6} median ours {median(ours_rates):.1f} MB/s, peak RSS max {max(rss):.0f} MB"
                if their_rates:
                    summary += (
                        f"; rclone {median(their_rates):.1f} MB/s; "
                        f"ratio {median(ours_rates) / median(their_rates):.2f}"
                    )
                print(summary, flush=True)
            finally:
                target.stop()


if __name__ == "__main__":
    main()
