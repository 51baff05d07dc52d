"""What does one worker do per hour with the recording store in a bucket?

Runs the portal's own code in this process (Django set up with a temporary
DATA_DIR, SQLite, and the recording store on moto's S3 server from
tests/servers/moto_s3.py) and times two things a worker machine does:

* processing: a 2-participant session (640x360 H.264/AAC, ``--seconds`` long
  each) ingested with ``do_store_file``, then ``process_session``: fetch the
  inputs from the bucket, composite (1280x720 veryfast, the default), poster,
  store the results. Prints the wall time, the real-time factor and the
  sessions per hour one processing worker can take at that session length;
* delivery: one ``--size-mib`` recording in the bucket delivered by the engine
  (``Conf.SYNC``: the task runs here, as a qcluster worker would run it) to a
  local folder and to an S3 destination on the same moto server: fetch to the
  worker's disk with sha256, upload, verify, manifest. Prints MB/s.

    .venv/bin/python bench/capacity.py [--seconds 60] [--size-mib 512]

Figures depend on the machine's load: the script prints the load average
before and after; docs/deploy.md quotes them.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MIB = 1024 * 1024


def set_up(data_dir: Path, bucket) -> None:
    from cryptography.fernet import Fernet

    os.environ.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        DATA_DIR=str(data_dir),
        DATABASE_URL=f"sqlite:///{data_dir / 'portal.sqlite3'}",
        SECRET_KEY="bench-" + os.urandom(16).hex(),
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        DEBUG="false",
        LOG_LEVEL="WARNING",
        OUTBOUND_ALLOWED_NETWORKS="127.0.0.0/8",
        DELIVERY_LOCAL_ROOTS=str(data_dir.parent),
        RECORDING_STORAGE_BACKEND="storages.backends.s3.S3Storage",
        AWS_STORAGE_BUCKET_NAME=bucket.bucket,
        AWS_S3_ENDPOINT_URL=bucket.endpoint_url,
        AWS_ACCESS_KEY_ID=bucket.access_key_id,
        AWS_SECRET_ACCESS_KEY=bucket.secret_access_key,
        AWS_S3_REGION_NAME=bucket.region,
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def processing(project, seconds: float, workdir: Path) -> float:
    from projects.models import Room
    from recordings.actions import sessions as ingest
    from recordings.processing import process_session
    from recordings.samples import generate_participant_media

    room = Room.objects.create(project=project, name="capacity")
    session = ingest.do_start_session(project, room.room_id, acting_user=None)
    for index, name in enumerate(("Alice", "Bob")):
        path = workdir / f"{name}.mp4"
        generate_participant_media(path, name=name, seconds=seconds, index=index)
        with open(path, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        ingest.do_store_file(
            project, session.conf_num, file_type="individual", source_path=str(path),
            original_name=path.name, size=path.stat().st_size, sha256=digest, participant=name,
            acting_user=None,
        )  # fmt: skip
    ingest.do_end_session(
        project, session.conf_num, schedule_processing=False, acting_user=None
    )
    started = time.perf_counter()
    done = process_session(session.pk)
    took = time.perf_counter() - started
    if done.state != "ready":
        raise SystemExit(f"processing failed: {done.processing_error}")
    return took


def delivery(project, size: int, kind: str, config: dict, secrets: dict) -> float:
    from django_q.conf import Conf

    from delivery import scheduling
    from delivery.models import Delivery, DeliveryDestination
    from projects.models import Room
    from recordings import store
    from recordings.models import RecordingFile, Session

    Conf.SYNC = True
    DeliveryDestination.objects.filter(project=project).delete()
    DeliveryDestination.objects.create(
        project=project, name=kind, kind=kind, file_types=["transcoded"],
        config=config, secrets=secrets,
    )  # fmt: skip
    room = Room.objects.create(project=project, name=f"deliver-{kind}")
    session = Session.objects.create(project=project, room=room, state=Session.State.READY)
    name = f"{project.app_id}/{room.room_id}/{session.conf_num}/transcoded.mp4"
    with tempfile.TemporaryFile() as fh:
        block = os.urandom(MIB)
        for _ in range(size // MIB):
            fh.write(block)
        fh.seek(0)
        stored = store.put(name, fh)
    RecordingFile.objects.create(
        session=session, project=project, type="transcoded", name="transcoded.mp4",
        size=stored.size, sha256=stored.sha256, storage_path=name, content_type="video/mp4",
    )  # fmt: skip
    started = time.perf_counter()
    scheduling.schedule_deliveries_for_session(session.pk)
    took = time.perf_counter() - started
    state = Delivery.objects.get(session=session).state
    if state != Delivery.State.DELIVERED:
        raise SystemExit(f"delivery to {kind} ended {state}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--size-mib", type=int, default=512)
    args = parser.parse_args()
    from tests.servers.moto_s3 import start_moto_s3

    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    bucket = start_moto_s3()
    base = Path(tempfile.mkdtemp(prefix="bench-capacity-"))
    try:
        (base / "data" / "static").mkdir(parents=True)
        set_up(base / "data", bucket)
        from django.contrib.auth import get_user_model

        from projects.actions.projects import do_create_project

        user = get_user_model().objects.create_user("bench")
        project = do_create_project("Capacity", acting_user=user).project

        took = processing(project, args.seconds, base)
        factor = args.seconds / took
        print(
            f"processing: 2 participants x {args.seconds:.0f} s in {took:.1f} s "
            f"({factor:.1f}x real time) -> {3600 / took:.0f} such sessions/hour per worker"
        )
        size = args.size_mib * MIB
        folder = base / "nas"
        folder.mkdir()
        local = delivery(project, size, "local", {"path": str(folder), "root": "r"}, {})
        print(f"delivery to a local folder: {args.size_mib} MiB in {local:.1f} s "
              f"({size / 1e6 / local:.0f} MB/s)")  # fmt: skip
        full = bucket.destination_config(root="delivered")
        keys = ("access_key_id", "secret_access_key")
        to_s3 = delivery(
            project, size, "s3",
            {k: v for k, v in full.items() if k not in keys}, {k: full[k] for k in keys},
        )  # fmt: skip
        print(f"delivery to S3 (same moto): {args.size_mib} MiB in {to_s3:.1f} s "
              f"({size / 1e6 / to_s3:.0f} MB/s)")  # fmt: skip
    finally:
        bucket.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
