"""Health: ``/healthz`` for load balancers, ``manage.py health`` for monitoring,
and the admin's health page, checked against the real portal (gunicorn and one
qcluster per configured cluster) and, for the backlog limits, in process."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import timedelta
from io import StringIO

import pytest
import requests
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from delivery.models import Delivery, DeliveryDestination
from portal import health
from tests.factories import make_session
from tests.servers import free_port
from tests.servers.portal import ROOT, PortalProcesses
from webhooks.models import WebhookMessage

# Short, so that a killed cluster is seen dead within seconds; long enough
# that a loaded machine's live cluster (a heartbeat every 0.5 s) stays alive.
HEARTBEAT_MAX_AGE = 8
STAFF_PASSWORD = "operator-password-123"


def figures(stdout: str) -> dict[str, dict[str, str]]:
    """``manage.py health`` output as {first key=value of a line: its pairs}."""
    parsed = {}
    for line in stdout.splitlines():
        pairs = dict(pair.split("=", 1) for pair in line.split())
        first = line.split("=", 1)[0]
        parsed[f"{first}={pairs[first]}" if first == "CLUSTER" else first] = pairs
    return parsed


def wait_for_health(portal: PortalProcesses, *, healthy: bool, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while True:
        result = portal.manage("health", check=False)
        if (result.returncode == 0) == healthy or time.monotonic() > deadline:
            return result
        time.sleep(1)


def start_cluster(portal: PortalProcesses, name: str) -> subprocess.Popen:
    """``Q_CLUSTER_NAME=<name> manage.py qcluster``, stopped with the portal."""
    log = open(portal.logs / f"cluster-{name}.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT, env={**portal.env, "Q_CLUSTER_NAME": name},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    portal.workers.append(proc)
    return proc


@pytest.fixture(scope="module")
def portal():
    processes = PortalProcesses(
        extra_env={"HEALTH_HEARTBEAT_MAX_AGE_SECONDS": str(HEARTBEAT_MAX_AGE)}
    )
    try:
        processes.setup()
        processes.manage("shell", "-c", (
            "from django.contrib.auth import get_user_model;"
            f"get_user_model().objects.create_user('operator', 'op@example.com', '{STAFF_PASSWORD}',"
            " is_staff=True)"
        ))  # fmt: skip
        processes.start_web()
        yield processes
    finally:
        processes.stop()


# --- /healthz -------------------------------------------------------------------


def test_healthz_says_ok_to_anyone_and_nothing_more(portal):
    response = portal.get("/healthz")
    assert response.status_code == 200
    assert response.text == "ok\n"
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "no-store" in response.headers["Cache-Control"]
    assert "Set-Cookie" not in response.headers
    assert requests.head(portal.public_url + "/healthz", timeout=30).status_code == 200


def test_healthz_is_503_without_details_when_the_recording_store_is_unreachable(portal):
    # The store's folder replaced by a file: every listing fails, as with a
    # dead mount. Restored afterwards for the other tests.
    store = portal.data_dir / "recordings"
    store.mkdir(exist_ok=True)
    store.rmdir()
    store.write_text("not a folder")
    try:
        response = portal.get("/healthz")
        assert response.status_code == 503
        assert response.text == "unavailable\n"
        assert "no-store" in response.headers["Cache-Control"]
        result = portal.manage("health", check=False)
        assert result.returncode == 1
        assert figures(result.stdout)["DATABASE"] == {"DATABASE": "ok", "STORE": "unreachable"}
        assert "the store is unreachable" in result.stderr
    finally:
        store.unlink()
        store.mkdir()
    assert portal.get("/healthz").status_code == 200


def test_healthz_is_503_when_the_database_is_unreachable():
    # PostgreSQL URL of a port nothing listens on: gunicorn starts (Django
    # connects lazily) and every query fails.
    down = PortalProcesses(database_url=f"postgres://portal@127.0.0.1:{free_port()}/portal")
    try:
        down.start_web()
        response = down.get("/healthz")
        assert response.status_code == 503
        assert response.text == "unavailable\n"
        result = down.manage("health", check=False)
        assert result.returncode == 1
        assert figures(result.stdout)["DATABASE"]["DATABASE"] == "unreachable"
        assert "Traceback" not in result.stderr
    finally:
        down.stop()


def test_healthz_is_exempt_from_the_https_redirect_that_production_turns_on():
    # An https PUBLIC_BASE_URL turns on SECURE_SSL_REDIRECT; a load balancer
    # probing the backend over plain HTTP must still get an answer.
    port = free_port()
    web = PortalProcesses(extra_env={"PUBLIC_BASE_URL": f"https://127.0.0.1:{port}"})
    try:
        web.start_web(bind_port=port)
        plain = f"http://127.0.0.1:{port}"
        login = requests.get(plain + "/accounts/login/", timeout=30, allow_redirects=False)
        assert login.status_code == 301  # the redirect is on...
        response = requests.get(plain + "/healthz", timeout=30, allow_redirects=False)
        assert (response.status_code, response.text) == (200, "ok\n")  # ...but not here
    finally:
        web.stop()


# --- manage.py health and the admin page ----------------------------------------


def test_health_passes_while_every_cluster_has_live_workers_and_fails_once_one_dies(portal):
    names = health.cluster_names()  # the default cluster and every ALT_CLUSTERS name
    clusters = {name: start_cluster(portal, name) for name in names}
    result = wait_for_health(portal, healthy=True)
    assert result.returncode == 0, result.stdout + result.stderr
    report = figures(result.stdout)
    for name in names:
        assert int(report[f"CLUSTER={name}"]["ALIVE"]) >= 1
        assert int(report[f"CLUSTER={name}"]["WORKERS"]) >= 1
        assert float(report[f"CLUSTER={name}"]["HEARTBEAT_AGE"]) < HEARTBEAT_MAX_AGE
    assert report["STATUS"]["STATUS"] == "ok"
    assert report["DELIVERIES_DUE"]["DELIVERIES_DUE"] == "0"

    dead = names[-1]
    PortalProcesses.kill(clusters[dead])
    result = wait_for_health(portal, healthy=False, timeout=HEARTBEAT_MAX_AGE + 60)
    assert result.returncode == 1
    report = figures(result.stdout)
    assert report[f"CLUSTER={dead}"]["ALIVE"] == "0"
    assert report["STATUS"]["STATUS"] == "unhealthy"
    assert f"cluster {dead}: no live workers" in result.stderr
    for name in names[:-1]:
        assert int(report[f"CLUSTER={name}"]["ALIVE"]) >= 1
    # The web's own health does not depend on the workers.
    assert portal.get("/healthz").status_code == 200

    clusters[dead] = start_cluster(portal, dead)
    assert wait_for_health(portal, healthy=True).returncode == 0


def admin_session(portal, username: str, password: str) -> requests.Session:
    session = requests.Session()
    login = portal.public_url + "/admin/login/"
    page = session.get(login, timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    session.post(
        login, timeout=30, headers={"Referer": login},
        data={"username": username, "password": password, "csrfmiddlewaretoken": token,
              "next": "/admin/"},
    )  # fmt: skip
    return session


def test_the_admin_health_page_shows_staff_the_live_figures(portal):
    started = [start_cluster(portal, name) for name in health.cluster_names()]
    assert wait_for_health(portal, healthy=True).returncode == 0, "the clusters never came up"
    session = admin_session(portal, "operator", STAFF_PASSWORD)
    page = session.get(portal.public_url + "/admin/health/", timeout=30)
    assert page.status_code == 200
    assert "Healthy" in page.text
    for name in health.cluster_names():
        assert f"Cluster “{name}”" in page.text
    assert "Deliveries due" in page.text
    assert "no-store" in page.headers["Cache-Control"]
    assert re.search(r"<td>(Idle|Working)</td>", page.text)  # a live instance's status
    # ...and links to it from every admin page.
    assert 'href="/admin/health/"' in session.get(portal.public_url + "/admin/", timeout=30).text
    for proc in started:
        PortalProcesses.kill(proc)


def test_the_admin_health_page_sends_anyone_else_to_the_admin_login(portal):
    for session in (requests.Session(), admin_session(portal, "ops", "ops-password-123")):
        page = session.get(portal.public_url + "/admin/health/", timeout=30, allow_redirects=False)
        assert page.status_code == 302
        assert page.headers["Location"].startswith("/admin/login/")


# --- limits, in process ---------------------------------------------------------


def run_health() -> tuple[dict, str]:
    out = StringIO()
    try:
        call_command("health", stdout=out)
    except CommandError as exc:
        return figures(out.getvalue()), str(exc)
    return figures(out.getvalue()), ""


@pytest.fixture
def destination(world):
    return DeliveryDestination.objects.create(
        project=world.project, name="archive", kind="s3", file_types=["transcoded"]
    )


def test_a_delivery_due_longer_than_its_limit_makes_health_fail(world, destination, settings):
    settings.HEALTH_DELIVERY_MAX_WAIT_SECONDS = 600
    now = timezone.now()
    Delivery.objects.create(
        session=make_session(world.project), destination=destination,
        state=Delivery.State.QUEUED, next_attempt_at=now - timedelta(seconds=900),
    )  # fmt: skip
    # Waiting for a retry that is not due yet: not part of the backlog.
    Delivery.objects.create(
        session=make_session(world.project), destination=destination,
        state=Delivery.State.RETRY_WAIT, next_attempt_at=now + timedelta(hours=1),
    )  # fmt: skip
    report, problems = run_health()
    assert report["DELIVERIES_DUE"]["DELIVERIES_DUE"] == "1"
    assert 900 <= float(report["DELIVERIES_DUE"]["OLDEST_DUE_DELIVERY_AGE"]) < 960
    assert "1 delivery(s) due; the oldest has waited 9" in problems

    settings.HEALTH_DELIVERY_MAX_WAIT_SECONDS = 3600
    assert "delivery" not in run_health()[1]


def test_a_delivery_whose_worker_died_counts_from_the_end_of_its_lease(world, destination):
    Delivery.objects.create(
        session=make_session(world.project), destination=destination,
        state=Delivery.State.RUNNING, lease_expires_at=timezone.now() - timedelta(seconds=300),
    )  # fmt: skip
    report, _ = run_health()
    assert report["DELIVERIES_DUE"]["DELIVERIES_DUE"] == "1"
    assert 300 <= float(report["DELIVERIES_DUE"]["OLDEST_DUE_DELIVERY_AGE"]) < 360


def test_a_webhook_message_waiting_longer_than_its_limit_makes_health_fail(world, settings):
    settings.HEALTH_WEBHOOK_MAX_WAIT_SECONDS = 60
    WebhookMessage.objects.create(
        project=world.project, event_type="recording", payload={},
        state=WebhookMessage.State.RETRY, next_attempt_at=timezone.now() - timedelta(seconds=120),
    )  # fmt: skip
    WebhookMessage.objects.create(
        project=world.project, event_type="recording", payload={},
        state=WebhookMessage.State.DELIVERED, next_attempt_at=None,
    )  # fmt: skip
    report, problems = run_health()
    assert report["WEBHOOKS_WAITING"]["WEBHOOKS_WAITING"] == "1"
    assert "1 webhook message(s) due; the oldest has waited 12" in problems


def test_every_configured_cluster_is_checked(db, settings):
    settings.Q_CLUSTER = {
        **settings.Q_CLUSTER, "ALT_CLUSTERS": {"processing": {"workers": 1}, "reports": {}},
    }  # fmt: skip
    assert health.cluster_names() == [settings.Q_CLUSTER["name"], "processing", "reports"]
    report, problems = run_health()
    for name in health.cluster_names():
        assert report[f"CLUSTER={name}"]["ALIVE"] == "0"
        assert f"cluster {name}: no live workers (never heard from" in problems


def test_the_admin_health_page_is_for_staff_only(client, world, make_user):
    url = reverse("admin-health")
    assert client.get(url).status_code == 302
    client.force_login(world.alice)  # a project owner, not staff
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    client.force_login(make_user("olga", is_staff=True))
    assert client.get(url).status_code == 200


def test_heartbeats_need_no_extra_command_after_migrate(db):
    # `migrate` (post_migrate) made the table of the test database.
    from django.db import connection

    assert "portal_cluster_heartbeats" in connection.introspection.table_names()


def test_queue_depth_counts_each_clusters_own_tasks(db, settings):
    from django_q.models import OrmQ
    from django_q.tasks import async_task

    async_task("math.floor", 1.5)  # to the default cluster's queue
    OrmQ.objects.update(lock=timezone.now() - timedelta(seconds=90))  # queued 90 s ago
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "ALT_CLUSTERS": {"processing": {}}}
    report, _ = run_health()
    default = report[f"CLUSTER={health.cluster_names()[0]}"]
    assert (default["QUEUED"], default["IN_PROGRESS"]) == ("1", "0")
    assert 90 <= float(default["OLDEST_QUEUED_AGE"]) < 150
    processing = report["CLUSTER=processing"]
    assert (processing["QUEUED"], processing["OLDEST_QUEUED_AGE"]) == ("0", "-")


def test_a_missing_heartbeat_table_is_reported_not_a_traceback(db):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE portal_cluster_heartbeats")
    report, problems = run_health()
    assert report[f"CLUSTER={health.cluster_names()[0]}"]["ALIVE"] == "0"
    assert "its heartbeats cannot be read (run `manage.py migrate`" in problems
