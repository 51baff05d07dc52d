"""Does a huge upload keep the server's memory flat?

Starts a real server (gunicorn portal.wsgi, one gthread worker) on a free
loopback port with a temporary DATA_DIR and SQLite, creates a project, a room
and a session, then streams one multipart upload of a WAV recording of
``--size-mib`` (default 2048 = 2 GiB, at most 4095: a WAV header's limit) to ``POST /ingest/v1/sessions/{conf_num}/files`` with
http.client, 1 MiB at a time, hashing it on the way. Meanwhile psutil samples
the resident memory (RSS) of the gunicorn master and its worker every 50 ms.
Prints the peak RSS of the worker and of master + worker, the throughput, and
checks that the server's size and sha256 match. Target: peak under 100 MB.

With ``--store s3`` the recording store is a bucket on moto's server
(tests/servers/moto_s3.py) instead of a folder: the upload is probed from its
temporary file, then sent to the bucket in multipart parts (settings'
S3_TRANSFER), and the object in the bucket is checked (size and sha256). The
target then is the worker's growth during the upload: under 100 MB.

    .venv/bin/python bench/ingest.py [--size-mib 2048] [--store s3]

The script exits 1 if the worker's peak RSS is 100 MB or more, or the upload fails.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET_MB = 100
BLOCK = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(data_dir: Path, size: int) -> dict:
    from cryptography.fernet import Fernet

    return {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "SECRET_KEY": "bench-" + os.urandom(16).hex(),
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DEBUG": "false",
        "UPLOAD_MAX_BYTES": str(size + BLOCK),
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": f"sqlite:///{data_dir / 'portal.sqlite3'}",
    }


SETUP = """
from django.contrib.auth import get_user_model
from projects.models import Room
from projects.actions.projects import do_create_project
user = get_user_model().objects.create_user("bench")
new = do_create_project("Bench", acting_user=user)
room = Room.objects.create(project=new.project, name="bench")
print(new.project.app_id, new.app_key, room.room_id)
"""


class Sampler(threading.Thread):
    def __init__(self, master_pid: int):
        super().__init__(daemon=True)
        self.master = psutil.Process(master_pid)
        self.peak_worker = self.peak_total = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                workers = self.master.children(recursive=True)
                rss = [p.memory_info().rss for p in workers]
                total = self.master.memory_info().rss + sum(rss)
            except psutil.Error:
                rss, total = [], 0
            self.peak_worker = max([self.peak_worker, *rss])
            self.peak_total = max(self.peak_total, total)
            self.stop.wait(0.05)


WAV_HEADER_BYTES = 44


def wav_header(data_size: int, rate: int = 192000, channels: int = 32, bits: int = 32) -> bytes:
    block = channels * bits // 8
    return (
        b"RIFF" + struct.pack("<I", 36 + data_size) + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, bits)
        + b"data" + struct.pack("<I", data_size)
    )  # fmt: skip


def upload(port: int, auth: str, conf_num: str, size: int) -> tuple[dict, str, float]:
    boundary = "bench" + os.urandom(8).hex()
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\nindividual\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="participant"\r\n\r\nBench\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    # The portal keeps only real media: a WAV header makes the random bytes PCM
    # audio. 32 channels of 32-bit 192 kHz (24.6 MB/s) keep even 4 GiB (the
    # most a WAV header can say) within the session's own length at the door.
    wav = wav_header(size - WAV_HEADER_BYTES)
    tail = f"\r\n--{boundary}--\r\n".encode()
    block = os.urandom(BLOCK)
    digest = hashlib.sha256()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.putrequest("POST", f"/ingest/v1/sessions/{conf_num}/files")
    conn.putheader("Authorization", f"Basic {auth}")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    conn.putheader("Content-Length", str(len(head) + size + len(tail)))
    conn.endheaders()
    started = time.perf_counter()
    conn.send(head)
    digest.update(wav)
    conn.send(wav)
    sent = len(wav)
    while sent < size:
        piece = block[: min(BLOCK, size - sent)]
        digest.update(piece)
        conn.send(piece)
        sent += len(piece)
    conn.send(tail)
    response = conn.getresponse()
    body = json.loads(response.read())
    elapsed = time.perf_counter() - started
    conn.close()
    if response.status != 201:
        raise SystemExit(f"upload failed: {response.status} {body}")
    return body["file"], digest.hexdigest(), elapsed


def wait_for(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited during start-up")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start within 30 s")


def bucket_env(server) -> dict:
    return {
        "RECORDING_STORAGE_BACKEND": "storages.backends.s3.S3Storage",
        "AWS_STORAGE_BUCKET_NAME": server.bucket,
        "AWS_S3_ENDPOINT_URL": server.endpoint_url,
        "AWS_ACCESS_KEY_ID": server.access_key_id,
        "AWS_SECRET_ACCESS_KEY": server.secret_access_key,
        "AWS_S3_REGION_NAME": server.region,
    }


def object_in_bucket(server, key: str) -> tuple[int, str]:
    body = server.client().get_object(Bucket=server.bucket, Key=key)["Body"]
    digest, size = hashlib.sha256(), 0
    for chunk in body.iter_chunks(BLOCK):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--store", choices=("local", "s3"), default="local")
    parser.add_argument(
        "--worker-class", default="gthread", help="gunicorn worker class (runportal uses gthread)"
    )
    args = parser.parse_args()
    if not 1 <= args.size_mib < 4096:
        parser.error("--size-mib must be 1 to 4095 (a WAV header says at most 4 GiB)")
    size = args.size_mib * BLOCK
    data_dir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    (data_dir / "static").mkdir()  # whitenoise warns about a missing STATIC_ROOT
    env = server_env(data_dir, size)
    python = sys.executable
    server = bucket = None
    if args.store == "s3":
        from tests.servers.moto_s3 import start_moto_s3

        bucket = start_moto_s3()
        env.update(bucket_env(bucket))
    try:
        subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        subprocess.run([python, "manage.py", "createcachetable"], cwd=ROOT, env=env, check=True)
        out = subprocess.run(
            [python, "manage.py", "shell", "-c", SETUP], cwd=ROOT, env=env, check=True,
            capture_output=True, text=True,
        ).stdout.split()  # fmt: skip
        app_id, app_key, room_id = out[-3:]
        port = free_port()
        server = subprocess.Popen(
            [python, "-m", "gunicorn", "portal.wsgi", "--bind", f"127.0.0.1:{port}",
             "--workers", "1", "--worker-class", args.worker_class, "--threads", "4",
             "--timeout", "900", "--log-level", "warning"],
            cwd=ROOT, env=env,
        )  # fmt: skip
        wait_for(port, server)
        auth = base64.b64encode(f"{app_id}:{app_key}".encode()).decode()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request(
            "POST",
            f"/ingest/v1/rooms/{room_id}/sessions",
            headers={"Authorization": f"Basic {auth}"},
        )
        conf_num = json.loads(conn.getresponse().read())["conf_num"]
        conn.close()

        sampler = Sampler(server.pid)
        sampler.start()
        time.sleep(0.3)
        idle_worker = sampler.peak_worker
        stored, sha256, elapsed = upload(port, auth, conf_num, size)
        time.sleep(0.3)
        sampler.stop.set()
        sampler.join()
        if bucket is not None:
            key = f"{app_id}/{room_id}/{conf_num}/{stored['name']}"
            in_bucket = object_in_bucket(bucket, key)
            left = [p for p in data_dir.rglob("*") if p.is_file() and "recordings" in p.parts]
            left += [p for p in (data_dir / "tmp").rglob("*") if p.is_file()]
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if bucket is not None:
            bucket.stop()
        shutil.rmtree(data_dir, ignore_errors=True)

    mb = 1024 * 1024
    ok = stored["size"] == size and stored["sha256"] == sha256
    print(f"store: {args.store}")
    print(f"upload: {size / mb:.0f} MiB in {elapsed:.1f} s ({size / mb / elapsed:.0f} MiB/s)")
    print(f"server checksum matches: {'yes' if ok else 'NO'}")
    if bucket is not None:
        ok = ok and in_bucket == (size, sha256) and not left
        print(
            f"object in the bucket matches (size, sha256): {'yes' if in_bucket == (size, sha256) else 'NO'}"
        )
        print(f"files left in the server's DATA_DIR: {len(left)}")
    print(
        f"worker RSS: idle {idle_worker / mb:.1f} MiB, peak {sampler.peak_worker / mb:.1f} MiB "
        f"(+{(sampler.peak_worker - idle_worker) / mb:.1f} MiB during the upload)"
    )
    print(f"master + worker peak RSS: {sampler.peak_total / mb:.1f} MiB")
    # A bucket upload holds its parts in memory (bounded by S3_TRANSFER): the
    # target is then the growth during the upload, not the peak.
    measured = sampler.peak_worker - (idle_worker if bucket is not None else 0)
    what = "worker growth" if bucket is not None else "worker peak"
    passed = ok and measured < TARGET_MB * 1000**2
    print(f"target: {what} < {TARGET_MB} MB -> {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
