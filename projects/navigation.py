"""The project's tab bar. A tab shows when its URL exists, the member has the
role it needs and (for recording access control) the project qualifies."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse

from .models import Project, Role


@dataclass(frozen=True)
class Tab:
    label: str
    url_name: str
    role: str = Role.VIEWER
    group: str = ""


TABS = [
    Tab("Overview", "projects:detail"),
    Tab("Rooms", "projects:rooms"),
    Tab("Recordings", "recordings:report"),
    Tab("Deliveries", "delivery:deliveries"),
    Tab("Webhook inbox", "demo:inbox"),  # the demo project of `make run` only
    Tab("Webhook", "projects:webhook", Role.ADMIN, "Settings"),
    Tab("Recording & Delivery", "delivery:settings", Role.ADMIN, "Settings"),
    Tab("Recording Access Control", "projects:access", Role.STAFF, "Settings"),
    Tab("Members", "projects:members", Role.OWNER),
    Tab("Audit", "projects:audit", Role.ADMIN),
]


def tabs_for(project: Project, current_url_name: str) -> list[dict]:
    from demo.inbox import is_demo_project

    from .access_control import access_control_available

    membership = getattr(project, "membership", None)
    tabs = []
    for tab in TABS:
        if membership is None or not membership.has_role(tab.role):
            continue
        if tab.url_name == "projects:access" and not access_control_available(project):
            continue
        if tab.url_name == "demo:inbox" and not is_demo_project(project):
            continue
        try:
            url = reverse(tab.url_name, args=[project.app_id])
        except NoReverseMatch:
            continue
        tabs.append(
            {"label": tab.label, "url": url, "group": tab.group, "active": tab.url_name == current_url_name}
        )
    return tabs
