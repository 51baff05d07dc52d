"""Pages outside the journeys render under the production Content-Security-Policy
too (the ``contexts`` fixture fails the test on any CSP report)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def test_the_api_docs_and_the_admin_login_render_under_the_csp(contexts, portal):
    page = contexts()
    page.goto("/api/docs/")
    expect(page.get_by_text("Recording Delivery Portal API").first).to_be_visible()
    expect(page.get_by_text("/ingest/v1/").first).to_be_visible()
    page.goto("/admin/login/")
    expect(page.get_by_label("Username")).to_be_visible()
    page.goto("/no/such/page/")
    expect(page.get_by_role("heading").first).to_be_visible()
    assert contexts.console.csp_violations == []
