"""Scale-out: three ``qcluster`` processes (two workers each) on one fresh
PostgreSQL database deliver 200 sessions to a local folder. Every delivery is
woken three times at once, so workers race for the same rows; the row lease
(``select_for_update(skip_locked=True)`` then a conditional UPDATE) must let
exactly one of them transfer each file, once."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import unavailable
from tests.servers.portal import PortalProcesses

pytestmark = pytest.mark.slow

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SESSIONS = 200
FILES = ("cam.webm", "chat.json")
WAKES = 3  # run_delivery tasks queued per delivery, all at once
CLUSTERS = 3
LATE_EVERY = 4  # a late wake for every 4th delivered row


# --- run inside the portal (manage.py shell -c) ----------------------------------------------


def make_sessions(app_id: str, count: int, wakes: int) -> None:
    """``count`` ready sessions with two small files each; schedule their
    deliveries (one wake each) and queue ``wakes - 1`` more runs of each."""
    from django.core.files.storage import storages
    from django.db import transaction

    from projects.models import Project, Room

    project = Project.objects.get(app_id=app_id)
    room = Room.objects.create(project=project, name="Scale-out")
    storage = storages["recordings"]
    with transaction.atomic():  # one commit; the wakes go out after it
        for index in range(count):
            make_session(project, room, storage, index, wakes)
    print(json.dumps({"room_id": room.room_id}))


def make_session(project, room, storage, index: int, wakes: int) -> None:
    from django.core.files.base import ContentFile
    from django_q.tasks import async_task

    from delivery.models import Delivery
    from delivery.scheduling import schedule_deliveries_for_session
    from recordings.models import RecordingFile, Session

    session = Session.objects.create(project=project, room=room, state=Session.State.READY)
    for name, kind in zip(FILES, ("individual", "chat"), strict=True):
        content = os.urandom(2048 + index)
        path = storage.save(
            f"{project.app_id}/{room.room_id}/{session.conf_num}/{name}", ContentFile(content)
        )
        RecordingFile.objects.create(
            session=session, project=project, type=kind, name=name, size=len(content),
            sha256=hashlib.sha256(content).hexdigest(), storage_path=path,
        )  # fmt: skip
    schedule_deliveries_for_session(session.pk)
    delivery = Delivery.objects.get(session=session)
    for _ in range(wakes - 1):
        async_task("delivery.tasks.run_delivery", delivery.pk, task_name=f"extra-{delivery.pk}")


def probe_claim(delivery_id: int) -> None:
    """Claim a delivery whose row another process holds locked: prints whether
    the claim won, how long it took and the SQL it sent."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from delivery.leases import claim

    started = time.monotonic()
    with CaptureQueriesContext(connection) as queries:
        won = claim(delivery_id, "probe")
    print(json.dumps({"won": won, "seconds": time.monotonic() - started,
                      "sql": [q["sql"] for q in queries.captured_queries]}))  # fmt: skip


def wake_again(every: int) -> None:
    """A late duplicate wake of every ``every``-th delivery, as a redelivery
    of a task whose acknowledgement got lost would give."""
    from django_q.tasks import async_task

    from delivery.models import Delivery

    for pk in Delivery.objects.order_by("pk").values_list("pk", flat=True)[::every]:
        async_task("delivery.tasks.run_delivery", pk, task_name=f"late-{pk}")


# --- test side --------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    name = f"scale_out_{secrets.token_hex(4)}"
    try:
        with connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        unavailable(f"needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth): {exc}")
    try:
        yield f"postgres://postgres@127.0.0.1:5432/{name}"
    finally:
        with connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def connect(url: str, **kwargs):
    """A connection, waiting out a PostgreSQL restart (another test may cause one)."""
    import psycopg

    deadline = time.monotonic() + 60
    while True:
        try:
            return psycopg.connect(url, connect_timeout=5, **kwargs)
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def sql(url: str, query: str, *params) -> list[tuple]:
    with connect(url) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def shell(portal: PortalProcesses, code: str) -> str:
    result = portal.manage("shell", "-c", code, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.5)
    return result


@pytest.fixture(scope="module")
def cluster():
    with fresh_database() as url:
        target = Path(tempfile.mkdtemp(prefix="scale-out-dest-"))
        portal = PortalProcesses(
            database_url=url, extra_env={"Q_WORKERS": "2", "DELIVERY_LOCAL_ROOTS": str(target)}
        )
        try:
            portal.setup()
            creds = portal.create_project("Scale-out")
            portal.manage(
                "delivery", "configure", creds["APP_ID"], "--kind", "local",
                "--types", "individual,chat", "--set", f"path={target}",
            )  # fmt: skip
            yield portal, url, creds, target
        finally:
            portal.stop()
            shutil.rmtree(target, ignore_errors=True)
            shutil.rmtree(portal.data_dir, ignore_errors=True)


def delivery_ids(url: str) -> list[int]:
    return [pk for (pk,) in sql(url, "SELECT id FROM delivery_delivery ORDER BY id")]


def test_a_claim_skips_a_row_another_worker_holds_locked(cluster):
    portal, url, creds, _target = cluster
    shell(portal, f"from tests.reliability.test_scale_out import make_sessions; "
                  f"make_sessions({creds['APP_ID']!r}, 1, 1)")  # fmt: skip
    [pk] = delivery_ids(url)
    code = f"from tests.reliability.test_scale_out import probe_claim; probe_claim({pk})"
    with connect(url) as holder:
        holder.execute("SELECT id FROM delivery_delivery WHERE id = %s FOR UPDATE", (pk,))
        blocked = json.loads(shell(portal, code))
    free = json.loads(shell(portal, code))

    assert blocked["won"] is False and blocked["seconds"] < 5, blocked
    assert any("FOR UPDATE SKIP LOCKED" in q for q in blocked["sql"]), blocked["sql"]
    assert free["won"] is True, free
    assert not json.loads(shell(portal, code))["won"], "a live lease was taken twice"
    # Leave nothing behind for the scale-out run.
    sql(url, "DELETE FROM django_q_ormq")
    shell(portal, "from recordings.models import Session; Session.objects.all().delete(); print(1)")


def test_three_clusters_deliver_200_sessions_with_no_duplicate_transfer(cluster):
    portal, url, creds, target = cluster
    shell(portal, f"from tests.reliability.test_scale_out import make_sessions; "
                  f"make_sessions({creds['APP_ID']!r}, {SESSIONS}, {WAKES})")  # fmt: skip
    ids = delivery_ids(url)
    assert len(ids) == SESSIONS
    queued = sql(url, "SELECT count(*) FROM django_q_ormq")[0][0]
    assert queued == SESSIONS * WAKES
    started = time.monotonic()
    for _ in range(CLUSTERS):
        portal.start_worker()

    def all_done():
        states = dict(sql(url, "SELECT state, count(*) FROM delivery_delivery GROUP BY state"))
        runs = sql(url, "SELECT count(*) FROM django_q_task "
                        "WHERE func = 'delivery.tasks.run_delivery'")[0][0]  # fmt: skip
        return states.get("delivered") == SESSIONS and runs == SESSIONS * WAKES

    wait_for(all_done, 150, f"{SESSIONS} deliveries and {SESSIONS * WAKES} runs")
    took = time.monotonic() - started

    rows = sql(url, "SELECT id, state, attempts, log FROM delivery_delivery")
    assert {(state, attempts) for _pk, state, attempts, _log in rows} == {("delivered", 1)}
    events = Counter(e["event"] for *_, log in rows for e in log)
    assert events["started"] == SESSIONS and events["uploaded"] == SESSIONS * len(FILES)
    assert events["skipped"] == 0 and events["retry"] == 0, events
    files = sql(url, "SELECT state, count(*) FROM delivery_deliveredfile GROUP BY state")
    assert files == [("verified", SESSIONS * len(FILES))]

    # The workers' own log lines: one "uploaded" per file, from several processes.
    logs = "".join(p.read_text(errors="replace") for p in portal.logs.glob("worker-*.log"))
    uploads = Counter(re.findall(r"delivery (\d+): uploaded and verified (\S+)", logs))
    assert len(uploads) == SESSIONS * len(FILES) and set(uploads.values()) == {1}
    owners = {e["message"].split(" by ")[1] for *_, log in rows for e in log
              if e["event"] == "started"}  # fmt: skip
    pids = {owner.split(":")[1] for owner in owners}
    assert len(pids) >= CLUSTERS, f"only {len(pids)} worker processes took deliveries"
    for bad in ("IntegrityError", "duplicate key", "Traceback", "lease lost"):
        assert bad not in logs, f"{bad!r} in the worker logs"
    failed = sql(url, "SELECT count(*) FROM django_q_task WHERE NOT success")[0][0]
    assert failed == 0

    landed = [p for p in target.rglob("*") if p.is_file()]
    assert not [p for p in landed if ".part-" in p.name]
    assert len(landed) == SESSIONS * (len(FILES) + 1)  # + manifest.json
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in landed}

    # A late duplicate wake of every delivered row transfers nothing again.
    shell(portal, f"from tests.reliability.test_scale_out import wake_again; "
                  f"wake_again({LATE_EVERY}); print(1)")  # fmt: skip
    wait_for(
        lambda: sql(url, "SELECT count(*) FROM django_q_task "
                         "WHERE func = 'delivery.tasks.run_delivery'")[0][0]
        == SESSIONS * WAKES + SESSIONS // LATE_EVERY,
        60, "the late wakes",
    )  # fmt: skip
    after = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in target.rglob("*") if p.is_file()}
    assert after == before
    assert sql(url, "SELECT DISTINCT attempts FROM delivery_delivery") == [(1,)]
    print(f"\n{SESSIONS} deliveries by {len(pids)} worker processes in {took:.1f} s")
