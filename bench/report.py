"""Do the Recordings report and the Archive API stay fast on a big project?

Seeds one project with ``--sessions`` sessions (default 200,000) of five files
each (1,000,000 recording files: two individual, transcoded, chat, metadata)
spread over the last 365 days, into a temporary SQLite database and into a
temporary PostgreSQL database (``--pg``, by default 127.0.0.1:5432, user
postgres, trust auth; created and dropped here). Then, with Django's test Client, measures p50/p95
latency and the SQL query count per page of:

* the report (logged-in viewer; default 30-day range, the next page through
  the keyset cursor, and a full-year range with one room), and
* the Archive API period route (30 days; page 1 and page 20),

each for two page sizes. Target: p95 < 100 ms, query count independent of
the page size. The report caches its per-day chart for a minute: the query
count and the "cold" time are of a request with an empty cache. "CPU" is
the benchmark process's own CPU time per request
(Django, and SQLite which runs in-process; not the PostgreSQL server), a
figure that a busy machine does not inflate the way it inflates wall time;
the load average at the start and end of the measurements is printed too.

    .venv/bin/python bench/report.py [--sessions 200000] [--runs 30] [--only sqlite|postgres]
                                     [--pg postgres://postgres@127.0.0.1:5432]
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_SERVER = "postgres://postgres@127.0.0.1:5432"
ROOMS = 100
FILES_PER_SESSION = 5
BATCH = 20_000


def pg_admin(server: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def run_backend(backend: str, sessions: int, runs: int, pg_server: str = PG_SERVER) -> dict:
    """Run one backend in a child process (Django settings are per process)."""
    with tempfile.TemporaryDirectory(prefix="bench-report-") as data_dir:
        env = dict(os.environ, DATA_DIR=data_dir)
        dbname = f"bench_report_{os.getpid()}"
        if backend == "postgres":
            pg_admin(pg_server, f"CREATE DATABASE {dbname}")
            env["DATABASE_URL"] = f"{pg_server}/{dbname}"
        else:
            env["DATABASE_URL"] = f"sqlite:///{data_dir}/bench.sqlite3"
        try:
            out = subprocess.run(
                [sys.executable, __file__, "--child", "--sessions", str(sessions),
                 "--runs", str(runs)],
                env=env, check=True, capture_output=True, text=True,
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            sys.stderr.write(exc.stderr[-4000:])
            raise
        finally:
            if backend == "postgres":
                pg_admin(pg_server, f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
        return json.loads(out.stdout.strip().splitlines()[-1])


# --- child: runs inside one configured Django -----------------------------------


def setup_django() -> None:
    from cryptography.fernet import Fernet

    os.environ.setdefault("SECRET_KEY", "bench-" + base64.b64encode(os.urandom(30)).decode())
    os.environ.setdefault("FIELD_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1"
    os.environ["AXES_ENABLED"] = "false"
    os.environ["DEBUG"] = "false"
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()


def seed(sessions: int) -> tuple[object, object, str, str]:
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from projects.actions.projects import do_create_project
    from projects.models import Membership, Role, Room
    from recordings.models import RecordingFile, Session

    owner = get_user_model().objects.create_user("owner", password="x" * 12)
    viewer = get_user_model().objects.create_user("viewer", password="x" * 12)
    created = do_create_project("Big", acting_user=owner)
    project = created.project
    Membership.objects.create(project=project, user=viewer, role=Role.VIEWER)
    rooms = Room.objects.bulk_create(
        [Room(project=project, name=f"Room {i:03d}") for i in range(ROOMS)]
    )
    now = datetime.now(UTC)
    span = timedelta(days=365).total_seconds()
    adapt = connection.ops.adapt_datetimefield_value
    s_fields = [f for f in Session._meta.concrete_fields if not f.primary_key]
    f_fields = [f for f in RecordingFile._meta.concrete_fields if not f.primary_key]

    def insert(model, fields, rows: list[dict]) -> None:
        table = model._meta.db_table
        columns = [f.column for f in fields]
        tuples = [
            tuple(
                adapt(r[f.attname]) if f.get_internal_type() == "DateTimeField" else r[f.attname]
                for f in fields
            )
            for r in rows
        ]
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                raw = cursor.cursor
                with raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in tuples:
                        copy.write_row(row)
            else:
                marks = ", ".join(["%s"] * len(columns))
                cursor.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", tuples
                )

    started = time.perf_counter()
    next_id = 1
    for batch_start in range(0, sessions, BATCH):
        s_rows, f_rows = [], []
        for i in range(batch_start, min(sessions, batch_start + BATCH)):
            at = now - timedelta(seconds=span * (i + 0.5) / sessions)
            room = rooms[i % ROOMS]
            sizes = [50_000_000 + i % 997, 48_000_000, 90_000_000, 2_000, 8_000]
            s_rows.append(
                {
                    "project_id": project.pk, "room_id": room.pk, "conf_num": str(10**11 + i),
                    "state": "ready", "recording": "off", "live_recording": "off",
                    "live_recording_config": "{}", "started_at": at,
                    "ended_at": at + timedelta(minutes=30),
                    "processed_at": at + timedelta(minutes=32), "processing_error": "",
                    "duration_seconds": 1800.0, "participant_count": 2,
                    "total_size": sum(sizes),
                }
            )  # fmt: skip
            names = ["p1.mp4", "p2.mp4", "composite.mp4", "chat.json", "metadata.json"]
            types = ["individual", "individual", "transcoded", "chat", "metadata"]
            for name, kind, size in zip(names, types, sizes, strict=True):
                f_rows.append(
                    {
                        "session_id": next_id, "project_id": project.pk, "type": kind,
                        "name": name, "size": size, "sha256": f"{i:064x}",
                        "storage_path": f"{project.app_id}/{room.room_id}/{10**11 + i}/{name}",
                        "participant": "", "content_type":
                            "application/json" if name.endswith("json") else "video/mp4",
                        "duration_seconds": 1800.0 if kind != "chat" else None,
                        "poster_path": "", "created_at": at + timedelta(minutes=31),
                        "expired_at": None,
                    }
                )  # fmt: skip
            next_id += 1
        with transaction.atomic():
            insert(Session, s_fields, s_rows)
            insert(RecordingFile, f_fields, f_rows)
    with connection.cursor() as cursor:
        # VACUUM sets PostgreSQL's visibility map, as autovacuum does for
        # insert-only tables, so covering indexes give index-only scans.
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    seed_seconds = time.perf_counter() - started
    assert RecordingFile.objects.count() == sessions * FILES_PER_SESSION
    return viewer, created, rooms[0].room_id, f"{seed_seconds:.1f}"


def measure(client, url: str, runs: int, **headers) -> dict:
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if not headers:
        # Report: count (and time) the request that computes the cached chart.
        # Not for the API, whose cache holds its app-key checks.
        cache.clear()
    started, cpu_started = time.perf_counter(), time.process_time()
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, **headers)
    cold = (time.perf_counter() - started) * 1000, (time.process_time() - cpu_started) * 1000
    queries = len(captured)  # now: later requests reset the log it slices
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    timings, cpu = [], []
    for _ in range(runs):
        started, cpu_started = time.perf_counter(), time.process_time()
        response = client.get(url, **headers)
        timings.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
    timings.sort()
    cpu.sort()
    return {
        "queries": queries,
        "cold": f"{cold[0]:.1f} / {cold[1]:.1f}",
        "p50": round(statistics.median(timings), 1),
        "p95": round(timings[math.ceil(len(timings) * 0.95) - 1], 1),
        "cpu50": round(statistics.median(cpu), 1),
        "cpu95": round(cpu[math.ceil(len(cpu) * 0.95) - 1], 1),
    }


def child(sessions: int, runs: int) -> None:
    setup_django()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    call_command("migrate", verbosity=0)
    viewer, created, room_id, seed_seconds = seed(sessions)
    app_id = created.project.app_id
    client = Client()
    client.force_login(viewer)
    today = datetime.now(UTC).date()
    month = f"{today - timedelta(days=29)}/{today}"
    report = f"/projects/{app_id}/recordings/"
    year = f"from={today - timedelta(days=365)}&to={today}&room={room_id}"
    token = base64.b64encode(f"{app_id}:{created.app_key}".encode()).decode()
    api = {"HTTP_AUTHORIZATION": f"Basic {token}"}
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    results = {"backend": connection.vendor, "sessions": sessions, "seed_seconds": seed_seconds}
    rows = []
    for per_page in (25, 100):
        first = client.get(f"{report}?per_page={per_page}").content.decode()
        found = re.search(r"older=([0-9.]+)", first)
        older = found.group(1) if found else ""
        cases = [
            ("report, last 30 days", f"{report}?per_page={per_page}", {}),
            ("report, 30 days, next page", f"{report}?per_page={per_page}&older={older}", {}),
            ("report, 1 year, one room", f"{report}?per_page={per_page}&{year}", {}),
            ("archive period 30 days, page 1",
             f"/video/v2/archive/period/{month}?per_page={per_page}", api),
            ("archive period 30 days, page 20",
             f"/video/v2/archive/period/{month}?per_page={per_page}&page=20", api),
        ]  # fmt: skip
        for name, url, headers in cases:
            rows.append(
                {"case": name, "per_page": per_page, **measure(client, url, runs, **headers)}
            )
    results["rows"] = rows
    results["load"] = f"{load_before} -> {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    print(json.dumps(results))


def table(result: dict) -> str:
    lines = [
        f"### {result['backend']} — {result['sessions']:,} sessions, "
        f"{result['sessions'] * FILES_PER_SESSION:,} files (seeded in {result['seed_seconds']} s; "
        f"load average {result['load']} on {os.cpu_count()} CPUs)",
        "",
        "| page | per page | SQL queries | cold ms (wall / CPU) | p50 ms | p95 ms "
        "| CPU p50 ms | CPU p95 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['case']} | {row['per_page']} | {row['queries']} | {row['cold']} | {row['p50']} "
            f"| {row['p95']} | {row['cpu50']} | {row['cpu95']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--pg", default=PG_SERVER, help=f"PostgreSQL server (default {PG_SERVER})")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.sessions, args.runs)
        return
    failed = False
    for backend in ("sqlite", "postgres"):
        if args.only and backend != args.only:
            continue
        result = run_backend(backend, args.sessions, args.runs, args.pg)
        print(table(result), "\n", flush=True)
        for case in {row["case"] for row in result["rows"]}:
            counts = {row["queries"] for row in result["rows"] if row["case"] == case}
            if len(counts) != 1:
                print(f"FAIL: query count of {case!r} depends on the page size: {counts}")
                failed = True
        slow = [row for row in result["rows"] if row["p95"] >= 100]
        for row in slow:
            print(f"FAIL: {row['case']} ({row['per_page']}/page) p95 {row['p95']} ms >= 100 ms")
        failed = failed or bool(slow)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
