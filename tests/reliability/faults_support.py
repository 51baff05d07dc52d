"""Helpers for the fault-injection tests (test_faults.py).

Two halves: functions run *inside* the portal's own Python (``manage.py shell
-c``) to make sessions cheaply and to sweep often, and test-side helpers for
a throwaway PostgreSQL database, SQL polling and waiting.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
MB = 1024 * 1024


# --- inside the portal process ------------------------------------------------------------------


def create_sessions(app_id: str, count: int, size: int, name: str = "cam.webm") -> None:
    """Make ``count`` ready sessions, each with one individual recording of
    ``size`` (+ index) random bytes written straight into the recordings
    storage (no ffmpeg), schedule their deliveries and print them as JSON."""
    from django.core.files.storage import storages

    from delivery.scheduling import schedule_deliveries_for_session
    from projects.models import Project, Room
    from recordings.models import RecordingFile, Session

    project = Project.objects.get(app_id=app_id)
    storage = storages["recordings"]
    room = Room.objects.create(project=project, name=f"Faults {secrets.token_hex(3)}")
    made = []
    for index in range(count):
        session = Session.objects.create(project=project, room=room, state=Session.State.READY)
        storage_path = f"{app_id}/{room.room_id}/{session.conf_num}/{name}"
        path = Path(storage.path(storage_path))
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        left = size + index  # sizes differ, so a mixed-up file cannot pass as another
        with open(path, "wb") as fh:
            while left:
                chunk = os.urandom(min(left, MB))
                fh.write(chunk)
                digest.update(chunk)
                left -= len(chunk)
        RecordingFile.objects.create(
            session=session, project=project, type=RecordingFile.Type.INDIVIDUAL, name=name,
            size=size + index, sha256=digest.hexdigest(), storage_path=storage_path,
        )  # fmt: skip
        made.append({"conf_num": session.conf_num, "room_id": room.room_id, "name": name,
                     "size": size + index, "sha256": digest.hexdigest()})  # fmt: skip
    for session in Session.objects.filter(room=room):
        schedule_deliveries_for_session(session.pk)
    print(json.dumps(made))


def sweep_forever(interval: float) -> None:
    """What the every-minute django-q2 schedule does, every ``interval``
    seconds: the scheduler only looks at schedules every 30 s and the
    smallest interval is a minute, far too slow for a test of a few minutes.
    Survives a database restart like a cron job would."""
    from django.db import connection

    from delivery.tasks import sweep
    from webhooks.tasks import sweep_due_messages

    while True:
        try:
            woken, sent = sweep(), sweep_due_messages()
            if woken or sent:
                print(f"{time.strftime('%X')} woke {woken} deliveries, sent {sent}", flush=True)
        except Exception as exc:
            print(f"{time.strftime('%X')} sweep failed: {exc!r}", flush=True)
            connection.close()
        time.sleep(interval)


# --- test side ---------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A fresh database on the local PostgreSQL; dropped afterwards."""
    import psycopg

    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://postgres@127.0.0.1:5432/{name}"
    finally:
        wait_for_postgres()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_for_postgres(timeout: float = 60) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(PG_ADMIN_URL, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def restart_postgres() -> None:
    """Restart the cluster (as root, like an operator would)."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def ensure_postgres_running() -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
        capture_output=True, timeout=120,
    )  # fmt: skip  # exits 2 when already running; wait_for_postgres decides
    wait_for_postgres()


def sql(url: str, query: str, *params: Any) -> list[tuple]:
    """Rows of ``query`` on a fresh connection (so a database restart between
    two polls does not matter)."""
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as conn:
        return conn.execute(query, params).fetchall()


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.5) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if result := check():
                return result
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(MB):
            digest.update(chunk)
    return digest.hexdigest()


def kv_lines(text: str) -> dict[str, str]:
    """``KEY=value`` lines as printed by the portal's commands (last one wins)."""
    pairs: dict[str, str] = {}
    for line in text.splitlines():
        for word in shlex.split(line):
            if "=" in word:
                key, value = word.split("=", 1)
                pairs[key] = value
    return pairs


def shell_call(portal, code: str) -> str:
    """Run ``code`` in ``manage.py shell`` of the portal; return stdout."""
    result = portal.manage("shell", "-c", code, check=False)
    if result.returncode:
        raise AssertionError(f"manage.py shell failed ({result.returncode}):\n{result.stderr}")
    return result.stdout


def start_sweeper(portal, interval: float = 2.0) -> subprocess.Popen:
    log = open(portal.logs / "sweeper.log", "ab")
    code = f"from tests.reliability.faults_support import sweep_forever; sweep_forever({interval})"
    return subprocess.Popen(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=Path(__file__).resolve().parents[2], env=portal.env, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
