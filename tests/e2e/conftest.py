"""Browser journeys against a real portal: gunicorn and a django-q2 worker
(``manage.py qcluster``) as subprocesses sharing a temporary SQLite database
and DATA_DIR, driven by Debian's headless Chromium through Playwright.

The portal runs as in production (``DEBUG=false``, the production CSP, static
files collected and served by whitenoise). Every page a test opens has its
console watched; a Content-Security-Policy violation fails the test.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.servers.moto_s3 import s3_server  # noqa: F401
from tests.servers.portal import PortalProcesses

ROOT = Path(__file__).resolve().parents[2]
# Journeys save what they see in a temporary folder, so `make test` leaves the
# work tree clean; `make screenshots` points PORTAL_SCREENSHOTS at
# docs/screenshots to refresh the README's pictures.
SCREENSHOTS = Path(
    os.environ.get("PORTAL_SCREENSHOTS") or Path(tempfile.gettempdir()) / "portal-screenshots"
)
PASSWORD = "journey-Pass-2024!"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
# The people of the journeys: ada administers, sam is staff, vera watches
# recordings, otto belongs to no project of theirs.
USERS = ("ada", "sam", "vera", "otto")

# One subprocess for the whole set-up: each Django start costs seconds.
CREATE_USERS = """
from django.contrib.auth import get_user_model
for name in {users!r}:
    get_user_model().objects.create_user(name, f"{{name}}@example.com", {password!r})
"""


class Portal(PortalProcesses):
    """The portal's processes (see tests/servers/portal.py) plus what the
    journeys need to drive and wait for them."""

    @property
    def url(self) -> str:
        return self.public_url

    def values(self, *args: str, timeout: float = 120) -> dict[str, str]:
        """Run a management command; return its KEY=value lines."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if done.returncode != 0:
            raise AssertionError(f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr}")
        pairs = [line.split("=", 1) for line in done.stdout.splitlines() if "=" in line]
        return {key.strip(): value.strip().strip("'") for key, value in pairs}

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def query(self, sql: str, *params) -> list[tuple]:
        """Read the portal's database directly (read-only) to wait for background work."""
        uri = f"file:{self.data_dir / 'portal.sqlite3'}?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=10) as db:
            return db.execute(sql, params).fetchall()

    def wait_until(self, what: str, check, timeout: float = 60.0, every: float = 0.25):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            self.assert_running()
            time.sleep(every)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.log_tail()}")

    def assert_running(self) -> None:
        for process in [self.web, *self.workers]:
            if process is not None and process.poll() is not None:
                raise AssertionError(f"{process.args} exited\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        out = []
        for path in sorted(self.logs.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(out)


@pytest.fixture(scope="session")
def portal() -> Iterator[Portal]:
    portal = Portal(extra_env={"LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"})
    try:
        portal.setup()
        portal.manage("shell", "-c", CREATE_USERS.format(users=USERS, password=PASSWORD))
        portal.start_web()
        portal.start_worker()
        requests.get(f"{portal.url}/accounts/login/", timeout=10).raise_for_status()
        yield portal
    finally:
        portal.stop()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


class Console:
    """Console messages of every page of a browser context."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def watch(self, page) -> None:
        page.on("console", lambda message: self.messages.append(message.text))

    @property
    def csp_violations(self) -> list[str]:
        return [m for m in self.messages if "Content Security Policy" in m]


FAILURES = Path(tempfile.gettempdir()) / "portal-e2e-failures"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.call_failed = report.failed


@pytest.fixture
def contexts(request, browser, portal):
    """``new(user=None, width=1280, **options)`` opens a browser context (logged in
    when ``user`` is given) and returns its first page. At the end, no page of any
    context may have reported a Content-Security-Policy violation."""
    opened = []
    console = Console()

    def new(user: str | None = None, *, width: int = 1280, height: int = 860, **options):
        context = browser.new_context(
            base_url=portal.url, viewport={"width": width, "height": height},
            timezone_id="Europe/Berlin", locale="en-GB", **options,
        )  # fmt: skip
        context.set_default_timeout(15_000)
        context.on("page", console.watch)
        opened.append(context)
        page = context.new_page()
        if user:
            log_in(page, user)
        return page

    new.console = console
    yield new
    if getattr(request.node, "call_failed", False):
        # What the browser showed when the journey broke, for the developer.
        FAILURES.mkdir(exist_ok=True)
        for i, page in enumerate(p for c in opened for p in c.pages):
            base = FAILURES / f"{request.node.name}-{i}"
            page.screenshot(path=f"{base}.png", full_page=True)
            Path(f"{base}.html").write_text(page.content())
        print(f"pages at failure saved in {FAILURES}; console: {console.messages}")
    for context in opened:
        context.close()
    assert console.csp_violations == [], "pages broke the Content-Security-Policy"


def log_in(page, user: str, password: str = PASSWORD) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/projects/")


def screenshot(page, name: str, *, full_page: bool = True) -> None:
    """Save SCREENSHOTS/<name>.png (docs/screenshots under `make screenshots`,
    which the README shows)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def narrow_screenshot(page, name: str) -> None:
    """The same page at a phone's 390 px width: nothing may stick out sideways."""
    size = page.viewport_size
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"{page.url} is {overflow}px wider than a 390 px screen"
        screenshot(page, f"{name}-390")
    finally:
        page.set_viewport_size(size)


# -- a project with members, a webhook and an S3 destination --------------------------------

CONFERENCE = """
import io, sys
from django.contrib.auth import get_user_model
from django.core.management import call_command
from projects.models import Membership, Project

def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    sys.stdout.write(out.getvalue())

run("createproject", "Conference", "--owner", "ada")
project = Project.objects.get(name="Conference")
for name, role in (("sam", "staff"), ("vera", "viewer")):
    user = get_user_model().objects.get(username=name)
    Membership.objects.create(project=project, user=user, role=role)
run("webhook", "configure", project.app_id, "--url", {hook_url!r})
run("delivery", "configure", project.app_id, "--kind", "s3", "--name", "Archive bucket",
    "--types", "individual,transcoded,chat,metadata", *{settings!r})
"""


@dataclass
class Conference:
    app_id: str
    app_key: str = field(repr=False)
    recording_username: str
    recording_password: str = field(repr=False)
    webhook_secret: str = field(repr=False)
    receiver: object
    s3: object


@pytest.fixture(scope="session")
def webhook_sink():
    from tests.servers.webhook_receiver import WebhookReceiver

    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def conference(portal, s3_server, webhook_sink) -> Conference:  # noqa: F811
    """Project "Conference" owned by ada (sam: staff, vera: viewer) delivering
    every file type to the moto S3 bucket under conference/, with its webhook
    pointing at the receiver. Set up through the management commands."""
    config = s3_server.destination_config(root="conference")
    settings = [arg for key, value in config.items() for arg in ("--set", f"{key}={value}")]
    created = portal.values(
        "shell", "-c", CONFERENCE.format(hook_url=webhook_sink.url, settings=settings)
    )
    return Conference(
        app_id=created["APP_ID"],
        app_key=created["APP_KEY"],
        recording_username=created["RECORDING_USERNAME"],
        recording_password=created["RECORDING_PASSWORD"],
        webhook_secret=created["WEBHOOK_SECRET"],
        receiver=webhook_sink,
        s3=s3_server,
    )


def simulate(portal: Portal, conference: Conference, room: str, seconds: float = 3):
    """Start ``manage.py simulate_session`` against the live server (a media
    server's view: Video API + ingest API over HTTP)."""
    return portal.popen(
        "simulate_session", conference.app_id, "--base-url", portal.url,
        f"--app-key={conference.app_key}", "--room", room, "--participants", "2",
        "--seconds", str(seconds), "--width", "320", "--height", "180",
    )  # fmt: skip


def finish(process: subprocess.Popen, timeout: float = 120) -> dict[str, str]:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"simulate_session failed:\n{out}\n{err}"
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@dataclass
class RecordedSession:
    conf_num: str
    room_id: str
    room: str


@pytest.fixture(scope="session")
def ready_session(portal, conference) -> RecordedSession:
    """A finished, processed session in room "Lecture hall" of the Conference."""
    result = finish(simulate(portal, conference, "Lecture hall", seconds=4))
    conf_num = result["CONF_NUM"]
    state = portal.wait_until(
        f"session {conf_num} to be processed",
        lambda: (
            _session_state(portal, conf_num) in ("ready", "failed")
            and _session_state(portal, conf_num)
        ),
        timeout=90,
    )
    assert state == "ready", f"processing failed:\n{portal.log_tail()}"
    return RecordedSession(conf_num, result["ROOM_ID"], "Lecture hall")


def _session_state(portal: Portal, conf_num: str) -> str:
    rows = portal.query("SELECT state FROM recordings_session WHERE conf_num = ?", conf_num)
    return rows[0][0] if rows else ""
