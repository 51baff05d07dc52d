"""No shared disk: the web (gunicorn) and two workers (qcluster) each have
their own DATA_DIR, as on three machines; they share only PostgreSQL and the
recording bucket (moto's S3 server). Sessions of two real participants are
ingested through the web, processed and delivered by the workers, served by
the web with Range from the bucket, each file delivered once, and the web
machine's disk holds no recording afterwards."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest
import requests

from recordings.samples import generate_participant_media
from tests.reliability.test_scale_out import fresh_database, sql, wait_for
from tests.servers.moto_s3 import MotoS3Server
from tests.servers.portal import PortalProcesses

pytestmark = [pytest.mark.pg, pytest.mark.slow]

SESSIONS = 3
PARTICIPANTS = ("Alice", "Bob")
TYPES = ("individual", "transcoded", "chat")


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def files_under(folder: Path, *, skip: tuple[str, ...] = ()) -> list[str]:
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and p.relative_to(folder).parts[0] not in skip
    )


@pytest.fixture
def machines(tmp_path):
    bucket = MotoS3Server().start()
    target = tmp_path / "nas"
    target.mkdir()
    workers = [Path(tempfile.mkdtemp(prefix=f"worker-{i}-")) for i in range(2)]
    try:
        with fresh_database() as url:
            portal = PortalProcesses(
                database_url=url,
                extra_env={
                    "RECORDING_STORAGE_BACKEND": "storages.backends.s3.S3Storage",
                    "AWS_STORAGE_BUCKET_NAME": bucket.bucket,
                    "AWS_S3_ENDPOINT_URL": bucket.endpoint_url,
                    "AWS_ACCESS_KEY_ID": bucket.access_key_id,
                    "AWS_SECRET_ACCESS_KEY": bucket.secret_access_key,
                    "AWS_S3_REGION_NAME": bucket.region,
                    "DELIVERY_LOCAL_ROOTS": str(target),
                    "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",
                },
            )
            try:
                portal.setup()
                creds = portal.create_project("No shared disk")
                portal.manage(
                    "delivery", "configure", creds["APP_ID"], "--kind", "local",
                    "--types", ",".join(TYPES), "--set", f"path={target}",
                )  # fmt: skip
                portal.start_web()
                for folder in workers:
                    portal.start_worker(data_dir=folder)
                yield portal, url, creds, bucket, target, workers
            finally:
                portal.stop()
    finally:
        bucket.stop()
        for folder in workers:
            shutil.rmtree(folder, ignore_errors=True)


def ingest_session(portal, creds, room_id: str, media: dict[str, Path]) -> str:
    auth = basic(creds["APP_ID"], creds["APP_KEY"])
    base = portal.public_url + "/ingest/v1"
    started = requests.post(f"{base}/rooms/{room_id}/sessions", headers=auth, timeout=30)
    assert started.status_code == 201, started.text
    conf_num = started.json()["conf_num"]
    for name, path in media.items():
        with open(path, "rb") as fh:
            response = requests.post(
                f"{base}/sessions/{conf_num}/files", headers=auth, timeout=120,
                data={"type": "individual", "participant": name}, files={"file": fh},
            )  # fmt: skip
        assert response.status_code == 201, response.text
    chat = requests.post(
        f"{base}/sessions/{conf_num}/files", headers=auth, timeout=30,
        data={"type": "chat"}, files={"file": ("chat.json", b'[{"text": "hi"}]')},
    )  # fmt: skip
    assert chat.status_code == 201, chat.text
    assert requests.post(f"{base}/sessions/{conf_num}/end", headers=auth, timeout=30).ok
    return conf_num


def test_web_and_two_workers_share_only_postgresql_and_the_bucket(machines, tmp_path):
    portal, url, creds, bucket, target, workers = machines
    media = {}
    for index, name in enumerate(PARTICIPANTS):
        media[name] = tmp_path / f"{name}.mp4"
        generate_participant_media(
            media[name], name=name, seconds=2.0, index=index, width=160, height=90,
            preset="ultrafast",
        )  # fmt: skip
    room = requests.post(
        portal.public_url + "/video/v2/rooms", json={"name": "Standup"}, timeout=30,
        headers=basic(creds["APP_ID"], creds["APP_KEY"]),
    )  # fmt: skip
    assert room.status_code in (200, 201), room.text
    room_id = room.json()["room"]["room_id"]
    conf_nums = [ingest_session(portal, creds, room_id, media) for _ in range(SESSIONS)]

    def all_delivered():
        # Chat goes out at the end of a session, the rest once it is processed.
        states = dict(sql(url, "SELECT state, count(*) FROM delivery_delivery GROUP BY state"))
        sessions = sql(url, "SELECT DISTINCT state FROM recordings_session")
        verified = sql(url, "SELECT count(*) FROM delivery_deliveredfile WHERE state = 'verified'")
        return (
            states.get("delivered") == SESSIONS
            and sessions == [("ready",)]
            and verified[0][0] == SESSIONS * (len(PARTICIPANTS) + 2)
        )

    wait_for(all_delivered, 400, f"{SESSIONS} sessions processed and delivered")
    assert sql(url, "SELECT DISTINCT state FROM recordings_session") == [("ready",)]

    # Every file is in the bucket once, under the store's name, with its sha256.
    rows = sql(url, "SELECT storage_path, sha256, size, type, name FROM recordings_recordingfile")
    assert len(rows) == SESSIONS * (len(PARTICIPANTS) + 2)  # + chat, transcoded
    s3 = bucket.client()
    listing = s3.list_objects_v2(Bucket=bucket.bucket)["Contents"]
    objects = {o["Key"]: o["Size"] for o in listing}
    posters = {k for k in objects if k.endswith("/transcoded.jpg")}
    assert len(posters) == SESSIONS
    assert {k: v for k, v in objects.items() if k not in posters} == {
        path: size for path, _sha, size, _type, _name in rows
    }
    for path, sha256, _size, _type, _name in rows:
        body = s3.get_object(Bucket=bucket.bucket, Key=path)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == sha256

    # Delivered once each, from the bucket, by the workers.
    landed = files_under(target)
    assert len(landed) == len(rows) + SESSIONS  # + one manifest.json per session
    for path, sha256, _size, _type, name in rows:
        # Uploads are one folder deeper in the bucket (app/room/conf/<key>/name).
        _app, room, conf, *_key, stored_name = path.split("/")
        assert stored_name == name
        delivered = target / room / conf / name
        assert hashlib.sha256(delivered.read_bytes()).hexdigest() == sha256
    logs = "".join(p.read_text(errors="replace") for p in portal.logs.glob("worker-*.log"))
    uploads = Counter(re.findall(r"delivery (\d+): uploaded and verified (\S+)", logs))
    assert len(uploads) == len(rows) and set(uploads.values()) == {1}
    assert sql(url, "SELECT DISTINCT attempts FROM delivery_delivery") == [(1,)]
    assert "Traceback" not in logs

    # Served by the web from the bucket: Range and a conditional request.
    transcoded = next(r for r in rows if r[3] == "transcoded")
    _app, room, conf, *_key, name = transcoded[0].split("/")
    assert name == transcoded[4]
    file_url = f"{portal.public_url}/recordings/{creds['APP_ID']}/{room}/{conf}/{name}"
    auth = basic(creds["RECORDING_USERNAME"], creds["RECORDING_PASSWORD"])
    part = requests.get(file_url, headers={**auth, "Range": "bytes=100-1123"}, timeout=30)
    assert part.status_code == 206, part.text
    whole = s3.get_object(Bucket=bucket.bucket, Key=transcoded[0])["Body"].read()
    assert part.content == whole[100:1124]
    again = requests.get(
        file_url, headers={**auth, "If-None-Match": part.headers["ETag"]}, timeout=30
    )
    assert again.status_code == 304

    # No machine keeps a recording: the web's disk never had one (logs and
    # static files only), the workers' temporary copies are gone.
    assert files_under(portal.data_dir, skip=("logs", "static")) == []
    for folder in workers:
        assert files_under(folder) == []
    assert {c for c in conf_nums} == {r[0].split("/")[2] for r in rows}
