"""Journey 4: a staff member resets the recording password; the default
credentials vanish from the report, and the browser's Basic-auth prompt
accepts only the new password."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .conftest import PASSWORD, narrow_screenshot, screenshot

pytestmark = pytest.mark.e2e

NEW_PASSWORD = "Harbour-lights-2031"


def test_a_staff_member_replaces_the_default_recording_password(
    contexts, portal, conference, ready_session
):
    page = contexts("sam")
    page.get_by_role("link", name="Conference").click()
    tabs = page.get_by_role("navigation", name="Project")
    tabs.get_by_role("link", name="Recordings").click()
    credentials = page.locator("section.credentials")
    expect(credentials).to_contain_text(conference.recording_username)
    expect(credentials).to_contain_text(conference.recording_password)

    tabs.get_by_role("link", name="Recording Access Control").click()
    screenshot(page, "access-control")
    page.get_by_label("Your account password").fill(PASSWORD)
    page.get_by_label("New recording password").fill(NEW_PASSWORD)
    page.get_by_label("Confirm new password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("password")
    expect(page.get_by_text("The default password is still in use")).to_have_count(0)
    narrow_screenshot(page, "access-control")

    tabs.get_by_role("link", name="Recordings").click()
    expect(page.locator("section.credentials")).to_contain_text(conference.recording_username)
    assert conference.recording_password not in page.content()
    assert NEW_PASSWORD not in page.content()

    url = (
        f"/recordings/{conference.app_id}/{ready_session.room_id}/"
        f"{ready_session.conf_num}/transcoded.mp4"
    )
    prompt = contexts().request.get(url, headers={"Accept": "text/html"})
    assert prompt.status == 401 and "basic" in prompt.headers["www-authenticate"].lower()
    user = conference.recording_username
    old = contexts(http_credentials={"username": user, "password": conference.recording_password})
    assert old.goto(url).status == 401
    new = contexts(http_credentials={"username": user, "password": NEW_PASSWORD})
    answer = new.goto(url)
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("video/mp4")

    # The change is in the project's audit log, without the password.
    page = contexts("ada")
    page.goto(f"/projects/{conference.app_id}/audit/")
    expect(page.locator("table.list")).to_contain_text("sam")
    assert NEW_PASSWORD not in page.content()
    screenshot(page, "audit")
