"""Journey 5: someone with an account but no membership cannot find or open
the project."""

from __future__ import annotations

import pytest

from .conftest import screenshot

pytestmark = pytest.mark.e2e


def test_an_outsider_neither_sees_nor_opens_the_project(contexts, portal, conference):
    page = contexts("otto")

    assert page.get_by_role("heading", name="My projects").is_visible()
    assert "Conference" not in page.content()
    assert page.get_by_text("You are not a member of any project yet.").is_visible()
    screenshot(page, "projects-empty")

    for path in ("", "recordings/", "rooms/", "deliveries/", "settings/delivery/",
                 "settings/access/", "settings/webhook/", "members/", "audit/"):  # fmt: skip
        response = page.goto(f"/projects/{conference.app_id}/{path}")
        assert response.status == 404, f"{path or 'overview'} answered {response.status}"
        assert conference.app_id not in page.content()
