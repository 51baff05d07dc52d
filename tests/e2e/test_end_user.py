"""Journey 3: an end user filters the Recordings report by room and date,
opens the player, plays the composite, seeks, and downloads the file through
a signed link."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.sync_api import expect

from .conftest import narrow_screenshot, screenshot

pytestmark = pytest.mark.e2e

PLAYS = "(v) => v.currentTime"


def test_an_end_user_finds_plays_seeks_and_downloads_a_recording(
    contexts, portal, conference, ready_session, tmp_path
):
    page = contexts("vera")
    page.get_by_role("link", name="Conference").click()
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Recordings").click()

    today = dt.datetime.now(dt.UTC).date().isoformat()
    page.get_by_label("From (UTC)").fill(today)
    page.get_by_label("To (UTC)").fill(today)
    page.get_by_label("Room").select_option(label=ready_session.room)
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(rf"from={today}.*room={ready_session.room_id}"))
    # The filter keeps its values and shows only that room's sessions.
    expect(page.get_by_label("Room")).to_have_value(ready_session.room_id)
    expect(page.get_by_label("From (UTC)")).to_have_value(today)
    rows = page.locator("table.sessions tbody tr")
    expect(rows).to_have_count(1)
    row = rows.first
    expect(row).to_contain_text(ready_session.conf_num)
    expect(row.locator("td[data-label=Size]")).to_have_text(re.compile(r"^\s*[\d.]+\s(KB|MB)\s*$"))
    expect(row.locator("td[data-label=Duration]")).to_have_text(re.compile(r"\d"))
    # Times are shown in the browser's time zone (Europe/Berlin here), UTC on hover.
    start = row.locator("td[data-label=Start] time")
    expect(start).to_have_attribute("title", re.compile(r"UTC$"))
    expect(start).not_to_contain_text("UTC")
    screenshot(page, "recordings")
    narrow_screenshot(page, "recordings")

    transcoded = row.locator(".file-group", has_text="Transcoded")
    transcoded.get_by_role("link", name="play").click()
    expect(page.get_by_role("heading", level=2).first).to_contain_text(".mp4")
    video = page.locator("video")
    expect(video).to_be_visible()
    codec_ok = page.evaluate(
        """() => document.createElement('video').canPlayType('video/mp4; codecs="avc1.42E01E"')"""
    )
    assert codec_ok, "this Chromium cannot play H.264 MP4"

    video.evaluate("(v) => { v.muted = true; return v.play(); }")
    page.wait_for_function(
        "() => document.querySelector('video').currentTime > 0.5", timeout=20_000
    )
    assert video.evaluate("(v) => v.error") is None
    duration = video.evaluate("(v) => v.duration")
    assert duration == pytest.approx(4, abs=1.5)

    # Seek near the end: needs Range requests on the served file.
    target = duration - 1.0
    video.evaluate(
        """(v, t) => new Promise((done) => {
            v.addEventListener('seeked', done, { once: true });
            v.currentTime = t;
        })""",
        target,
    )
    assert video.evaluate(PLAYS) == pytest.approx(target, abs=0.6)
    video.evaluate("(v) => v.pause()")
    screenshot(page, "player")

    link = page.get_by_role("link", name="Download")
    href = link.get_attribute("href")
    assert re.search(r"/dl/", href), href
    with page.expect_download() as info:
        link.click()
    download = info.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.suffix == ".mp4"
    size_text = page.locator("dt:text-is('Size') + dd").inner_text()
    assert saved.stat().st_size > 10_000, size_text
    assert saved.read_bytes()[4:8] == b"ftyp", "not an MP4 file"

    # The signed link works without a login (e.g. pasted into another browser).
    stranger = contexts()
    response = stranger.request.get(href)
    assert response.status == 200
    assert len(response.body()) == saved.stat().st_size
