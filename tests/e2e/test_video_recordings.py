"""Journey: a viewer opens Video → Recordings from the top navigation, finds
the Conference's session with its recording credentials, and the page fits a
phone; the project's administrator sees the recorders on the Rooms page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import narrow_screenshot, screenshot

pytestmark = pytest.mark.e2e


def test_video_recordings_across_projects(contexts, conference, ready_session):
    page = contexts("vera")
    page.get_by_role("navigation", name="Account").get_by_role(
        "link", name="Video → Recordings"
    ).click()
    expect(page.get_by_role("heading", name="Video → Recordings")).to_be_visible()
    expect(page.get_by_label("Project")).to_have_value(conference.app_id)
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(rf"project={conference.app_id}"))
    expect(page.locator(".credentials")).to_contain_text(conference.recording_username)
    row = page.locator("table.sessions tbody tr", has_text=ready_session.conf_num)
    expect(row).to_have_count(1)
    expect(row.get_by_role("link", name=re.compile(r"\.mp4$")).first).to_have_attribute(
        "href", re.compile(r"^/dl/")
    )
    screenshot(page, "video-recordings")
    narrow_screenshot(page, "video-recordings")

    admin = contexts("ada")
    admin.get_by_role("link", name="Conference").click()
    admin.get_by_role("navigation", name="Project").get_by_role("link", name="Rooms").click()
    expect(admin.get_by_role("heading", name="Live recording and streaming")).to_be_visible()
    expect(admin.get_by_text(re.compile(r"Recorders in use: \d+ of 10"))).to_be_visible()
