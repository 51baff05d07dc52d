"""A hostile upload does not run script on the portal's origin: an HTML page
with script and a JavaScript file, planted in the store and database as an
older or hostile ingest could have left them, are opened in headless Chromium
by a logged-in user — through ``/dl/<token>?inline=1`` and through the
Basic-protected ``/recordings/...`` URL — served by gunicorn directly and
behind nginx with the shipped config (X-Accel-Redirect). The page sets a
global, changes the title and calls a recording sink; none of it may happen:
each answer is a download, or a sandboxed document without script."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Error as PlaywrightError

from tests.recordings.hostile_files import Planted, plant_hostile_files
from tests.servers.nginx import portal_behind_nginx

from .conftest import PASSWORD

pytestmark = pytest.mark.e2e

MARKS = "() => [window.pwned ?? null, window.pwnedByFile ?? null, document.title]"


class Sink:
    """Records every request the hostile files manage to send out."""

    def __init__(self) -> None:
        hits = self.hits = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                hits.append(self.path)
                self.send_response(204)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def sink_server() -> Iterator[Sink]:
    sink = Sink()
    yield sink
    sink.close()


@pytest.fixture
def sink(sink_server) -> Sink:
    sink_server.hits.clear()
    return sink_server


@dataclass
class Target:
    """Where the browser goes: the portal's base URL, a user who can log in
    there, the project's recording credentials and the planted files."""

    base: str
    user: str
    password: str
    recording_credentials: tuple[str, str]
    files: dict[str, Planted]


def _target(portal, base: str, user: str, password: str, sink: Sink) -> Target:
    created = portal.manage("createproject", "Hostile tenant", "--owner", user).stdout
    values = dict(line.split("=", 1) for line in created.split() if "=" in line)
    return Target(
        base=base,
        user=user,
        password=password,
        recording_credentials=(values["RECORDING_USERNAME"], values["RECORDING_PASSWORD"]),
        files=plant_hostile_files(portal, values["APP_ID"], sink=sink.url),
    )


@pytest.fixture(scope="module")
def behind_nginx(sink_server) -> Iterator[Target]:
    with portal_behind_nginx() as (portal, base):
        # PortalProcesses.setup() creates the user "ops".
        yield _target(portal, base, "ops", "ops-password-123", sink_server)


@pytest.fixture(scope="module")
def direct(portal, sink_server) -> Target:
    return _target(portal, portal.url, "ada", PASSWORD, sink_server)


@pytest.fixture(params=["gunicorn", "nginx"])
def target(request) -> Target:
    return request.getfixturevalue("direct" if request.param == "gunicorn" else "behind_nginx")


@pytest.fixture
def victim(browser, target):
    """A page of a browser context logged in to the portal (the owner a hostile
    page would want to act as), which also holds the recording credentials."""
    user, password = target.recording_credentials
    context = browser.new_context(
        http_credentials={"username": user, "password": password, "origin": target.base}
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"{target.base}/accounts/login/")
    page.get_by_label("Username").fill(target.user)
    page.get_by_label("Password").fill(target.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/projects/")
    yield page
    context.close()


def _open_expecting_download(page, url: str) -> str:
    """Navigate to ``url``; the answer must be a download. Returns its file name."""
    with page.expect_download() as info:
        try:
            page.goto(url)
        except PlaywrightError as exc:  # a navigation that becomes a download
            assert "Download is starting" in str(exc) or "ERR_ABORTED" in str(exc), exc
    return info.value.suggested_filename


def _assert_nothing_ran(page, sink: Sink) -> None:
    time.sleep(1.0)  # time for a script or a subresource to reach the sink
    for frame_page in page.context.pages:
        assert frame_page.evaluate(MARKS)[:2] == [None, None], frame_page.url
        assert "pwned" not in frame_page.title()
    assert sink.hits == []


@pytest.mark.parametrize("route", ["dl-inline", "recordings"])
@pytest.mark.parametrize("name", ["evil.html", "evil.js"])
def test_a_stored_page_or_script_is_a_download(victim, target, sink, route, name):
    file = target.files[name]
    url = target.base + (f"{file.link}?inline=1" if route == "dl-inline" else file.path)
    assert _open_expecting_download(victim, url) == name
    _assert_nothing_ran(victim, sink)
    assert victim.url.endswith("/projects/")  # the portal page stayed as it was


def test_a_page_that_claims_to_be_video_is_sandboxed(victim, target, sink):
    # The row says video/mp4, so it may be inline; the bytes are the HTML page.
    victim.goto(f"{target.base}{target.files['evil-as-video.mp4'].link}?inline=1")
    _assert_nothing_ran(victim, sink)
    # A sandboxed document has an opaque origin: no access to the portal's cookies.
    origin = victim.evaluate(
        "() => { try { document.cookie; return self.origin } catch (e) { return e.name } }"
    )
    assert origin in ("null", "SecurityError"), origin


def test_a_portal_page_cannot_run_the_stored_script(victim, target, sink):
    """The portal's own pages allow script-src 'self': a stored script
    included from one (as the hostile page tried) is refused by its type."""
    link = target.files["evil.js"].link
    loaded = victim.evaluate(
        """(src) => new Promise((resolve) => {
            const script = document.createElement("script");
            script.src = src;
            script.onload = () => resolve("loaded");
            script.onerror = () => resolve("refused");
            document.head.appendChild(script);
        })""",
        f"{link}?inline=1",
    )
    assert loaded == "refused"
    _assert_nothing_ran(victim, sink)
