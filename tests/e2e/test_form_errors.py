"""Journey 6: bad input in each form shows an error next to the field (linked
to it for screen readers) and keeps what else was typed. Passwords are the
exception by design: they are never sent back to the browser."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import PASSWORD, narrow_screenshot, screenshot

pytestmark = pytest.mark.e2e


def error_next_to(page, label: str, message: str | re.Pattern) -> None:
    field = page.get_by_label(label, exact=True)
    expect(field).to_have_attribute("aria-invalid", "true")
    box = page.locator(".field.has-error", has=field)
    expect(box.locator(".field-error")).to_contain_text(message)
    # Screen readers read the error (and the help) with the field.
    for described_by in field.get_attribute("aria-describedby").split():
        expect(page.locator(f"#{described_by}")).to_have_count(1)
    # Exactly the fields with a problem are marked.
    expect(page.locator(".field.has-error")).to_have_count(1)


def test_bad_input_in_each_form_is_explained_next_to_the_field(
    contexts, portal, s3_server, conference, ready_session
):
    page = contexts("ada")

    # Create project, with the keyboard only.
    page.get_by_role("link", name="Create project").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/projects/new/")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Name")).to_be_focused()
    page.keyboard.type("   ")
    page.keyboard.press("Enter")
    error_next_to(page, "Name", "required")
    page.get_by_label("Name").focus()
    page.keyboard.type("Forms")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Project created")).to_be_visible()
    page.get_by_role("link", name="Continue to the project").click()
    expect(page.get_by_role("heading", name="Getting started")).to_be_visible()
    screenshot(page, "overview-new-project")
    narrow_screenshot(page, "overview-new-project")
    tabs = page.get_by_role("navigation", name="Project")

    # Rooms: automatic live recording without the page to record.
    tabs.get_by_role("link", name="Rooms").click()
    expect(page.get_by_text("No rooms yet.")).to_be_visible()
    page.get_by_label("Name").fill("Town hall")
    page.get_by_label("Owner reference").fill("team-7")
    page.get_by_label("Mode").select_option("lecture")
    page.get_by_label("Start live recording automatically").check()
    page.get_by_role("button", name="Create room").click()
    error_next_to(page, "Live recording URL", "required")
    expect(page.get_by_label("Name")).to_have_value("Town hall")
    expect(page.get_by_label("Owner reference")).to_have_value("team-7")
    expect(page.get_by_label("Mode")).to_have_value("lecture")
    expect(page.get_by_label("Start live recording automatically")).to_be_checked()
    page.get_by_label("Live recording URL").fill("https://example.com/stage")
    page.get_by_role("button", name="Create room").click()
    expect(page.locator("table.list")).to_contain_text("Town hall")
    screenshot(page, "rooms")
    narrow_screenshot(page, "rooms")

    # Webhook: not a URL.
    tabs.get_by_role("link", name="Webhook").click()
    page.get_by_label("Webhook URL").fill("https://hooks.example.com:notaport/in")
    page.get_by_label("Send events").uncheck()
    page.get_by_role("button", name="Save").click()
    error_next_to(page, "Webhook URL", "Enter a full http:// or https:// URL")
    expect(page.get_by_label("Webhook URL")).to_have_value("https://hooks.example.com:notaport/in")
    expect(page.get_by_label("Send events")).not_to_be_checked()

    # Delivery settings: an address where the bucket name belongs.
    tabs.get_by_role("link", name="Recording & Delivery").click()
    page.get_by_label("Deliver files to").select_option("s3")
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Name", exact=True).fill("Offsite")
    page.get_by_label("Individual recording").check()
    page.get_by_label("Bucket").fill(f"s3://{s3_server.bucket}")
    page.get_by_label("Access key id").fill("AKIAEXAMPLE")
    page.get_by_label("Secret access key").fill("not-kept-on-purpose")
    page.get_by_label("Endpoint url").fill(s3_server.endpoint_url)
    page.get_by_role("button", name="Save destination").click()
    error_next_to(page, "Bucket", "bucket name only")
    expect(page.get_by_label("Name", exact=True)).to_have_value("Offsite")
    expect(page.get_by_label("Individual recording")).to_be_checked()
    expect(page.get_by_label("Access key id")).to_have_value("AKIAEXAMPLE")
    expect(page.get_by_label("Endpoint url")).to_have_value(s3_server.endpoint_url)
    expect(page.get_by_label("Bucket")).to_have_value(f"s3://{s3_server.bucket}")
    assert "not-kept-on-purpose" not in page.content()

    # Members: an empty name is an error next to the field; a name gets the
    # same answer whether or not the account exists (no list of accounts).
    tabs.get_by_role("link", name="Members").click()
    page.get_by_label("Role", exact=True).select_option("staff")
    page.get_by_role("button", name="Add member").click()
    error_next_to(page, "Username or email", "required")
    expect(page.get_by_label("Role", exact=True)).to_have_value("staff")
    for name in ("nobody-here", "sam"):
        page.get_by_label("Username or email").fill(name)
        page.get_by_role("button", name="Add member").click()
        expect(page.locator(".messages")).to_contain_text(f"{name} is invited as")
        expect(page.locator("table.list")).to_contain_text(f"{name} (invited; joins at next login before")
    screenshot(page, "members")
    narrow_screenshot(page, "members")

    # Recording access control (the tab exists once a project has recordings):
    # the confirmation does not match, then the account password is wrong.
    page.goto(f"/projects/{conference.app_id}/settings/access/")
    page.get_by_label("Your account password").fill(PASSWORD)
    page.get_by_label("New recording password").fill("Lighthouse-keeper-9")
    page.get_by_label("Confirm new password").fill("Lighthouse-keeper-8")
    page.get_by_role("button", name="Save").click()
    error_next_to(page, "Confirm new password", "do not match")
    page.get_by_label("Your account password").fill("wrong password")
    page.get_by_label("New recording password").fill("Lighthouse-keeper-9")
    page.get_by_label("Confirm new password").fill("Lighthouse-keeper-9")
    page.get_by_role("button", name="Save").click()
    error_next_to(page, "Your account password", "not your account password")
