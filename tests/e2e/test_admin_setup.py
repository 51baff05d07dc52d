"""Journey 1: an administrator logs in, creates a project, configures delivery
to S3, presses "Test connection", sees it pass and saves."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import narrow_screenshot, screenshot

pytestmark = pytest.mark.e2e


def test_an_admin_creates_a_project_and_sets_up_s3_delivery(contexts, portal, s3_server):
    page = contexts()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    screenshot(page, "login")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("journey-Pass-2024!")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="My projects")).to_be_visible()

    page.get_by_role("link", name="Create project").click()
    page.get_by_label("Name").fill("Telehealth production")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Project created")).to_be_visible()
    app_id = page.locator("dt:text-is('APP_ID') + dd code").inner_text()
    assert re.fullmatch(r"[0-9a-f]{24}", app_id) or app_id

    page.get_by_role("link", name="Continue to the project").click()
    nav = page.get_by_role("navigation", name="Project")
    nav.get_by_role("link", name="Recording & Delivery").click()
    expect(page.get_by_text("No destination yet")).to_be_visible()
    page.get_by_label("Deliver files to").select_option("s3")
    page.get_by_role("button", name="Continue").click()

    page.get_by_label("Name", exact=True).fill("Customer bucket")
    expect(page.get_by_label("Transcoded")).to_be_checked()
    page.get_by_label("Chat data").uncheck()
    page.get_by_label("Bucket").fill(s3_server.bucket)
    page.get_by_label("Region").fill(s3_server.region)
    page.get_by_label("Access key id").fill(s3_server.access_key_id)
    page.get_by_label("Secret access key").fill(s3_server.secret_access_key)
    page.get_by_label("Endpoint url").fill(s3_server.endpoint_url)
    page.get_by_role("button", name="Save destination").click()
    expect(page.get_by_text("Destination “Customer bucket” saved.")).to_be_visible()

    # Saved: the destination's page offers the test before anything is delivered.
    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_text(re.compile("Test of “Customer bucket” passed"))).to_be_visible()
    screenshot(page, "delivery-destination")

    secret = page.get_by_label("Secret access key")
    assert secret.input_value() == "", "a stored secret must never be rendered back"
    page.get_by_label("Individual recording").check()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Destination “Customer bucket” saved.")).to_be_visible()

    page.get_by_role("link", name="All destinations").click()
    row = page.locator("table.destinations tr", has_text="Customer bucket")
    expect(row.locator("td[data-label='File types']")).to_have_text(
        "Individual recording, Transcoded, Metadata"
    )
    expect(row.get_by_text("On", exact=True)).to_be_visible()
    # The blank secret field kept the stored secret: the test still passes.
    row.get_by_role("button", name="Test connection").click()
    expect(page.get_by_text(re.compile("Test of “Customer bucket” passed"))).to_be_visible()
    screenshot(page, "delivery-settings")
    narrow_screenshot(page, "delivery-settings")
