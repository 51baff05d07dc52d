"""Walk every portal URL of a project for every kind of visitor.

ROLE_FOR_URL lists each project page with the least role that may open it;
a test fails when a project URL is added without an entry here, so every
new page is checked for owner, admin, staff, viewer, outsider and anonymous.
"""

from __future__ import annotations

import pytest
from django.urls import get_resolver, reverse

from projects.models import Role
from tests.factories import make_recording

# url name -> (least role, method that shows the page)
ROLE_FOR_URL: dict[str, tuple[str, str]] = {
    "projects:detail": (Role.VIEWER, "get"),
    "projects:rooms": (Role.VIEWER, "get"),
    "recordings:report": (Role.VIEWER, "get"),
    "projects:regenerate_app_key": (Role.OWNER, "post"),
    "projects:access": (Role.STAFF, "get"),
    "projects:members": (Role.OWNER, "get"),
    "projects:audit": (Role.ADMIN, "get"),
    "projects:webhook": (Role.ADMIN, "get"),
    "projects:webhook_send_test": (Role.ADMIN, "post"),
    "projects:webhook_rotate_secret": (Role.ADMIN, "post"),
    "delivery:settings": (Role.ADMIN, "get"),
    "delivery:deliveries": (Role.VIEWER, "get"),
    "delivery:progress": (Role.VIEWER, "get"),
    "delivery:retry_failed": (Role.ADMIN, "post"),
    "delivery:past_sessions": (Role.ADMIN, "post"),
}

# Project URLs that are not portal pages (they have their own auth or are
# reached through links with more arguments).
NOT_PAGES: set[str] = {
    # make run's demo only: 404 for every project but the demo project while
    # DEMO_WEBHOOK_INBOX is on; tests/demo/test_inbox.py checks who sees what.
    "demo:inbox",
    "demo:inbox_receive",
}


def project_url_names() -> set[str]:
    names = set()

    def walk(patterns, namespace=""):
        for p in patterns:
            if hasattr(p, "url_patterns"):
                ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
                walk(p.url_patterns, ns)
            elif p.name and "app_id" in p.pattern.regex.groupindex:
                if len(p.pattern.regex.groupindex) == 1:
                    names.add(f"{namespace}{p.name}")

    walk(get_resolver().url_patterns)
    return names


def test_every_project_url_has_a_role_entry():
    missing = project_url_names() - set(ROLE_FOR_URL) - NOT_PAGES
    assert not missing, f"add these URLs to ROLE_FOR_URL: {sorted(missing)}"


ROLES = [Role.OWNER, Role.ADMIN, Role.STAFF, Role.VIEWER]


@pytest.fixture(autouse=True)
def _project_with_a_recording(world):
    # Some pages (Recording Access Control) exist only once there is a recording.
    make_recording(world.project)


@pytest.mark.parametrize("url_name", sorted(ROLE_FOR_URL))
@pytest.mark.parametrize("role", ROLES)
def test_members_get_their_pages_and_403_for_the_rest(client, world, member, url_name, role):
    least, method = ROLE_FOR_URL[url_name]
    member(role, client)
    response = getattr(client, method)(reverse(url_name, args=[world.app_id]))
    if Role.rank(role) >= Role.rank(least):
        assert response.status_code in (200, 302), response.content[:300]
    else:
        assert response.status_code == 403
        assert b"role" in response.content


@pytest.mark.parametrize("url_name", sorted(ROLE_FOR_URL))
def test_outsiders_get_404(client, world, url_name):
    client.force_login(world.charlie)
    method = ROLE_FOR_URL[url_name][1]
    assert getattr(client, method)(reverse(url_name, args=[world.app_id])).status_code == 404


@pytest.mark.parametrize("url_name", sorted(ROLE_FOR_URL))
def test_anonymous_visitors_are_sent_to_login(client, world, url_name):
    method = ROLE_FOR_URL[url_name][1]
    response = getattr(client, method)(reverse(url_name, args=[world.app_id]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("url_name", sorted(ROLE_FOR_URL))
def test_unknown_projects_are_404(client, world, url_name):
    client.force_login(world.alice)
    method = ROLE_FOR_URL[url_name][1]
    assert getattr(client, method)(reverse(url_name, args=["f" * 24])).status_code == 404
