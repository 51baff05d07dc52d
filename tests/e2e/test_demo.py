"""Journey: a newcomer's first minute with `make run`. The portal is set up
the way the Makefile's ``run`` target does it (setup_demo, fill_demo, then
gunicorn and both worker clusters, with the demo-only settings), and the
demo login opens the page runportal points at: the Webhook inbox, showing
the delivered session, its files on disk under DATA_DIR/delivered and the
signed file_transfer that announced it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from .conftest import Portal, narrow_screenshot, screenshot

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def portal():
    """Overrides the journeys' shared portal for this module: `make run`'s demo."""
    portal = Portal(extra_env={"LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"})
    # What the Makefile's run target exports, for the demo only.
    portal.env["DELIVERY_LOCAL_ROOTS"] = str(portal.data_dir / "delivered")
    portal.env["DEMO_WEBHOOK_INBOX"] = "true"
    try:
        portal.setup()
        portal.demo = portal.values("setup_demo")
        portal.values("fill_demo", timeout=300)
        portal.start_web()
        portal.start_worker()
        yield portal
    finally:
        portal.stop()


def inbox_rows(portal: Portal, event_type: str) -> list[tuple]:
    return portal.query(
        "SELECT msg_id, body FROM demo_inboxmessage WHERE event_type = ?", event_type
    )


def test_the_demo_shows_a_delivered_session_its_files_and_the_signed_file_transfer(
    contexts, portal
):
    demo = portal.demo
    app_id = demo["DEMO_APP_ID"]
    assert demo["DEMO_DELIVERED_TO"] == str(portal.data_dir / "delivered")
    assert demo["DEMO_WEBHOOK_URL"] == f"{portal.url}/projects/{app_id}/webhook-inbox/receive"
    [(msg_id, _body)] = portal.wait_until(
        "the demo's file_transfer to reach the Webhook inbox",
        lambda: inbox_rows(portal, "file_transfer"),
        timeout=180,
    )

    # The start page runportal prints: log in, land on the inbox.
    page = contexts()
    page.goto(f"/accounts/login/?next=/projects/{app_id}/webhook-inbox/")
    page.get_by_label("Username").fill(demo["DEMO_USERNAME"])
    page.get_by_label("Password").fill(demo["DEMO_PASSWORD"])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"**/projects/{app_id}/webhook-inbox/")
    tabs = page.get_by_role("navigation", name="Project")
    expect(tabs.get_by_role("link", name="Webhook inbox")).to_have_attribute("aria-current", "page")

    session = page.locator(".delivered-session")
    expect(session).to_have_count(1)
    expect(session.locator(".badge.state-delivered")).to_have_text("Delivered")
    delivered = portal.data_dir / "delivered"
    paths = [Path(text) for text in session.locator("li code").all_inner_texts()]
    assert paths and all(path.is_relative_to(delivered) for path in paths), paths
    # Every file the page names is really on this machine's disk.
    assert all(path.is_file() and path.stat().st_size > 0 for path in paths), paths
    assert any(path.suffix == ".mp4" for path in paths)
    expect(session.get_by_text("on disk", exact=False).first).to_be_visible()

    message = page.locator("details.inbox-message", has_text="file_transfer")
    expect(message).to_have_count(1)
    expect(message.locator("summary")).to_contain_text("signature verified")
    expect(message.locator("summary")).to_contain_text(msg_id)
    expect(message.locator("pre")).to_contain_text(str(paths[0].parent))
    screenshot(page, "demo-inbox")
    narrow_screenshot(page, "demo-inbox")

    # The demo project's other pages lead here too.
    tabs.get_by_role("link", name="Deliveries").click()
    expect(page.locator("tr[data-delivery]").first).to_contain_text("Delivered")
    screenshot(page, "demo-deliveries")


def test_the_real_inbox_refuses_a_forged_webhook_and_an_oversized_body(portal):
    """Against gunicorn: the inbox keeps nothing it cannot verify."""
    app_id = portal.demo["DEMO_APP_ID"]
    url = f"{portal.url}/projects/{app_id}/webhook-inbox/receive"
    before = portal.query("SELECT COUNT(*) FROM demo_inboxmessage")[0][0]
    forged = requests.post(
        url,
        data=b'{"type":"file_transfer","app_id":"%s"}' % app_id.encode(),
        headers={
            "content-type": "application/json",
            "webhook-id": "msg_forged",
            "webhook-timestamp": str(int(time.time())),
            "webhook-signature": "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        },
        timeout=30,
    )
    assert forged.status_code == 400
    huge = requests.post(url, data=b"x" * (300 * 1024), timeout=30)
    assert huge.status_code == 413
    assert portal.query("SELECT COUNT(*) FROM demo_inboxmessage")[0][0] == before
    # The page is for the project's members only.
    page = requests.get(f"{portal.url}/projects/{app_id}/webhook-inbox/", timeout=30, allow_redirects=False)
    assert page.status_code == 302
