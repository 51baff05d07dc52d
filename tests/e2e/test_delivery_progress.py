"""Journey 2: a session runs (``simulate_session`` against the live server);
the administrator watches the delivery's progress bar reach 100 % without
reloading the page and finds the ``file_transfer`` webhook in the log."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import finish, narrow_screenshot, screenshot, simulate

pytestmark = pytest.mark.e2e

# individual x2, transcoded, chat, metadata (the destination takes these types)
FILES = 5


def test_an_admin_watches_a_session_being_delivered(contexts, portal, conference):
    page = contexts("ada")
    screenshot(page, "projects")
    narrow_screenshot(page, "projects")
    page.get_by_role("link", name="Conference").click()
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Deliveries").click()
    deliveries_url = page.url

    running = simulate(portal, conference, "Board room", seconds=3)
    result = finish(running)
    conf_num = result["CONF_NUM"]
    # Chat and metadata are delivered at the end of the session; the videos
    # join the same delivery once processing has made the composite.
    portal.wait_until(
        "the delivery of the session to be created",
        lambda: portal.query(
            "SELECT d.id FROM delivery_delivery d JOIN recordings_session s ON s.id = d.session_id "
            "WHERE s.conf_num = ?",
            conf_num,
        ),
    )
    page.goto(deliveries_url)
    page.evaluate("() => { window.notReloaded = true; }")
    row = page.locator("tr[data-delivery]", has_text=conf_num)
    bar = row.locator("progress")
    first_seen = (bar.get_attribute("value"), row.locator("[data-field=files]").inner_text())

    expect(row.locator("[data-field=files]")).to_have_text(
        f"{FILES}/{FILES} files verified", timeout=90_000
    )
    expect(row.locator("[data-field=state_label]")).to_have_text("Delivered")
    expect(bar).to_have_js_property("value", 100)
    expect(page.locator("#deliveries-summary")).to_contain_text("0 in progress or waiting")
    assert page.evaluate("() => window.notReloaded === true"), "the page was reloaded"
    assert first_seen != ("100", f"{FILES}/{FILES} files verified"), (
        "the delivery had finished before the page could show it progressing"
    )
    screenshot(page, "deliveries")
    narrow_screenshot(page, "deliveries")

    # The files are in the bucket, under <root>/<room_id>/<conf_num>/.
    listing = conference.s3.client().list_objects_v2(
        Bucket=conference.s3.bucket, Prefix=f"conference/{result['ROOM_ID']}/{conf_num}/"
    )
    names = {item["Key"].rsplit("/", 1)[1] for item in listing.get("Contents", [])}
    assert len(names - {"manifest.json"}) == FILES, names

    # The receiver got a signed file_transfer webhook listing the final paths ...
    def file_transfer():
        for request in conference.receiver.requests:
            body = request.json()
            kinds = {item.get("type") for item in body.get("files", [])}
            if body.get("type") == "file_transfer" and body.get("conf_num") == conf_num:
                if "transcoded" in kinds:
                    return request
        return None

    request = portal.wait_until("the file_transfer webhook", file_transfer, timeout=30)
    payload = conference.receiver.verify(conference.webhook_secret, request)
    paths = sorted(item["path"] for item in payload["files"])
    assert all(f"{result['ROOM_ID']}/{conf_num}/" in path for path in paths), paths

    # ... and the admin sees it in the webhook log.
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Webhook").click()
    events = page.locator("table.list tr", has_text="file_transfer")
    expect(events.first).to_be_visible()
    expect(events.first.get_by_text(re.compile("Delivered"))).to_be_visible()
    screenshot(page, "webhook")

    page.get_by_role("navigation", name="Project").get_by_role("link", name="Overview").click()
    expect(page.locator(".stats")).to_contain_text("1 delivery destination")
    screenshot(page, "overview")
