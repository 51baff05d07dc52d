"""Walk every URL of the portal for every kind of visitor.

Each URL pattern is classified below: project pages (per-object ones
included) with the least role that may use them, account pages, public
pages, the APIs (APP_ID/APP_KEY), recording files (the project's recording
credentials) and the Django admin (staff only). A test fails when a URL is
added without being classified, so every new page is checked for owner,
admin, staff, viewer, outsider and anonymous.

Every request runs in a savepoint that is rolled back, so what one visitor
changes (a removed member, a deleted destination) does not change what the
next one sees, and nothing is queued (on_commit never fires).
"""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from delivery.models import Delivery, DeliveryDestination
from projects.models import Invitation, Membership, Role
from tests.factories import make_recording
from webhooks.models import WebhookMessage

OWNER, ADMIN, STAFF, VIEWER = Role.OWNER, Role.ADMIN, Role.STAFF, Role.VIEWER
VISITORS = ["anonymous", "outsider", VIEWER, STAFF, ADMIN, OWNER]
MEMBERS = [VIEWER, STAFF, ADMIN, OWNER]

# Project URLs: name -> (least role, method). Below that role: 403 naming the
# role; outsiders and unknown projects: 404; anonymous: the login page.
PROJECT_URLS: dict[str, tuple[str, str]] = {
    "projects:detail": (VIEWER, "get"),
    "projects:rooms": (VIEWER, "get"),
    "projects:regenerate_app_key": (OWNER, "post"),
    "projects:access": (STAFF, "get"),
    "projects:members": (OWNER, "get"),
    "projects:invitation_cancel": (OWNER, "post"),
    "projects:member_role": (OWNER, "post"),
    "projects:member_remove": (OWNER, "post"),
    "projects:audit": (ADMIN, "get"),
    "projects:webhook": (ADMIN, "get"),
    "projects:webhook_send_test": (ADMIN, "post"),
    "projects:webhook_rotate_secret": (ADMIN, "post"),
    "projects:webhook_resend": (ADMIN, "post"),
    "recordings:report": (VIEWER, "get"),
    "recordings:file": (VIEWER, "get"),
    "delivery:settings": (ADMIN, "get"),
    "delivery:edit": (ADMIN, "get"),
    "delivery:delete": (ADMIN, "post"),
    "delivery:test": (ADMIN, "post"),
    "delivery:trust": (ADMIN, "post"),
    "delivery:keypair": (ADMIN, "post"),
    "delivery:google_connect": (ADMIN, "get"),
    "delivery:google_disconnect": (ADMIN, "post"),
    "delivery:deliveries": (VIEWER, "get"),
    "delivery:progress": (VIEWER, "get"),
    "delivery:retry_failed": (ADMIN, "post"),
    "delivery:past_sessions": (ADMIN, "post"),
    "delivery:redeliver": (ADMIN, "post"),
}

# Pages of a logged-in person outside any one project: every member and the
# outsider get them; anonymous visitors are sent to log in.
ACCOUNT_URLS: dict[str, str] = {
    "projects:list": "get",
    "projects:create": "get",
    "recordings:video_report": "get",
}

# Answered the same to everyone, logged in or not: name -> (method, status).
PUBLIC_URLS: dict[str, tuple[str, int]] = {
    "home": ("get", 302),  # to My projects, which sends anonymous visitors on to log in
    "login": ("get", 200),
    # The admin's own login page and logout, like the portal's.
    "admin:login": ("get", 200),
    "admin:logout": ("post", 302),
    "logout": ("post", 302),
    "healthz": ("get", 200),
    "schema": ("get", 200),
    "api-docs": ("get", 200),
    # A forged or expired link is refused whoever follows it.
    "recordings:download": ("get", 400),
    # Google's redirect without a state it issued.
    "delivery:google_callback": ("get", 400),
}

# APP_ID/APP_KEY (HTTP Basic) only: a portal login opens none of them.
API_URLS: dict[str, str] = {
    "api-rooms": "get",
    "api-room": "get",
    "api-archive-period": "get",
    "api-archive-room": "get",
    "api-archive-room-period": "get",
    "api-archive-room-period-alt": "get",
    "api-archive-room-period-old": "get",
    "api-archive-conf": "get",
    "api-archive-conf-num": "get",
    "api-cdr-period": "get",
    "api-cdr-room": "get",
    "api-cdr-room-period": "get",
    "api-cdr-conf": "get",
    "ingest-session-start": "post",
    "ingest-recording-start": "put",
    "ingest-recording-stop": "put",
    "ingest-live-recording-start": "put",
    "ingest-live-recording-stop": "put",
    "ingest-session": "get",
    "ingest-streaming-start": "put",
    "ingest-streaming-stop": "put",
    "ingest-files": "post",
    "ingest-end": "post",
}

# The project's recording username and password (HTTP Basic) only.
RECORDING_FILE_URLS = {"recordings:protected_file"}

# make run's demo only: 404 for every project but the demo project while
# DEMO_WEBHOOK_INBOX is on; tests/demo/test_inbox.py checks who sees what.
DEMO_URLS = {"demo:inbox", "demo:inbox_receive"}

# The admin site's own pages (every "admin:" URL) and the health page it
# wraps: staff only, nobody in these walks is staff.
ADMIN_URLS = {"admin-health"}

ARGUMENT_VALUES = {
    "date_from": "20240101",
    "date_to": "20240102",
    "token": "not-a-signed-link",
    "content_type_id": "1",
    "object_id": "1",
    "id": "1",
    "app_label": "projects",
    "url": "projects/",
}


def every_pattern():
    """(qualified name or None, namespace, route, pattern) for every URL."""
    found = []

    def walk(patterns, namespace="", prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
                walk(p.url_patterns, ns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                name = f"{namespace}{p.name}" if p.name else None
                found.append((name, namespace, prefix + str(p.pattern), p))

    walk(get_resolver().url_patterns)
    return found


CLASSIFIED = [
    PROJECT_URLS, ACCOUNT_URLS, PUBLIC_URLS, API_URLS, RECORDING_FILE_URLS, DEMO_URLS, ADMIN_URLS
]


def view_of(pattern):
    """The view behind a pattern: class-based views get a new function per
    ``as_view()``, so aliases are recognised by their class."""
    return getattr(pattern.callback, "view_class", pattern.callback)


def aliases_of(name: str) -> list[str]:
    """Unnamed routes serving the same view as ``name`` (EnableX's /v1/
    prefix and the trailing-slash spellings), filled in as ``name`` is."""
    patterns = every_pattern()
    view = next(view_of(p) for n, _, _, p in patterns if n == name)
    return [route for n, _, route, p in patterns if n is None and view_of(p) == view]


def classified(name: str) -> int:
    return sum(name in group for group in CLASSIFIED)


def admin_site_urls() -> list[str]:
    return sorted(
        {name for name, ns, _, _ in every_pattern() if name and ns == "admin:"} - set(PUBLIC_URLS)
    )


def project_pages() -> list[str]:
    """Names of the project pages that take only the app_id (GET): the
    secrets scan opens each of them."""
    patterns = {name: p for name, _, _, p in every_pattern() if name}
    return [
        name
        for name, (_role, method) in PROJECT_URLS.items()
        if method == "get" and set(patterns[name].pattern.regex.groupindex) == {"app_id"}
    ]


def test_every_url_is_classified_exactly_once():
    patterns = every_pattern()
    named_views = {view_of(p) for name, *_, p in patterns if name}
    missing, twice = [], []
    for name, namespace, route, pattern in patterns:
        if namespace == "admin:" and classified(name or "") == 0:
            continue  # Django's admin site, walked below as a whole
        if name is None:
            # EnableX's aliases (/v1/..., trailing slash) share a named route's view.
            if view_of(pattern) not in named_views:
                missing.append(route)
            continue
        count = classified(name)
        if count == 0:
            missing.append(name)
        elif count > 1:
            twice.append(name)
    assert not missing, f"classify these URLs in {__name__}: {sorted(missing)}"
    assert not twice, f"these URLs are classified twice: {sorted(twice)}"


def test_every_classified_url_exists():
    names = {name for name, *_ in every_pattern() if name}
    stale = [name for group in CLASSIFIED for name in group if name not in names]
    assert not stale, stale


# --- the objects that per-object URLs point at ---------------------------------


@pytest.fixture
def objects(world, local_roots):
    recording = make_recording(world.project)
    destinations = {
        kind: DeliveryDestination.objects.create(
            project=world.project, name=kind, kind=kind, file_types=["individual"], config=config
        )
        for kind, config in {
            "local": {"path": str(local_roots)},
            "sftp": {"host": "127.0.0.1", "port": 9, "username": "u", "root": "/"},
            "gdrive": {"folder_id": ""},
        }.items()
    }
    delivery = Delivery.objects.create(
        session=recording.session, destination=destinations["local"], state=Delivery.State.FAILED
    )
    message = WebhookMessage.objects.create(
        project=world.project, event_type="recording", payload={}, state=WebhookMessage.State.FAILED
    )
    invitation = Invitation.objects.create(project=world.project, identifier="dora", role=VIEWER)
    bob = Membership.objects.get(project=world.project, user=world.bob)
    app_id = world.app_id
    room_id, conf_num = recording.session.room.room_id, recording.session.conf_num
    return {
        "app_id": app_id,
        "file_id": recording.pk,
        "invitation_id": invitation.pk,
        "membership_id": bob.pk,
        "msg_id": message.msg_id,
        "delivery_id": delivery.pk,
        "room_id": room_id,
        "conf_num": conf_num,
        "name": recording.name,
        "destinations": destinations,
    }


DESTINATION_FOR = {
    "delivery:trust": "sftp",
    "delivery:keypair": "sftp",
    "delivery:google_connect": "gdrive",
    "delivery:google_disconnect": "gdrive",
}


def url_for(name: str, objects: dict, *, app_id: str | None = None) -> str:
    pattern = next(p for n, _, _, p in every_pattern() if n == name)
    values = {**ARGUMENT_VALUES, **objects}
    values["dest_id"] = objects["destinations"][DESTINATION_FOR.get(name, "local")].pk
    if app_id is not None:
        values["app_id"] = app_id
    return reverse(name, kwargs={key: values[key] for key in pattern.pattern.regex.groupindex})


@pytest.fixture
def visitors(world, make_user):
    """A client per kind of visitor: anonymous, outsider (charlie), viewer
    (bob) and a member of each other role (alice is the owner)."""
    clients = {"anonymous": Client()}
    users = {"outsider": world.charlie, VIEWER: world.bob, OWNER: world.alice}
    for role in (STAFF, ADMIN):
        users[role] = make_user(f"member_{role}")
        Membership.objects.create(project=world.project, user=users[role], role=role)
    for who, user in users.items():
        clients[who] = Client()
        clients[who].force_login(user)
    return clients


def answers(visitors, method: str, url: str, **extra) -> dict:
    """Each visitor's status, every request rolled back afterwards."""
    statuses = {}
    for who in VISITORS:
        with transaction.atomic():
            response = getattr(visitors[who], method)(url, **extra)
            transaction.set_rollback(True)
        statuses[who] = response
    return statuses


def login_redirect(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith(reverse("login"))


# --- the walks -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PROJECT_URLS))
def test_project_urls_answer_each_visitor_by_role(visitors, objects, name):
    least, method = PROJECT_URLS[name]
    got = answers(visitors, method, url_for(name, objects))
    assert login_redirect(got["anonymous"]), got["anonymous"]
    assert got["outsider"].status_code == 404
    for role in MEMBERS:
        response = got[role]
        if Role.rank(role) >= Role.rank(least):
            assert response.status_code in (200, 302), (role, response.content[:300])
        else:
            assert response.status_code == 403, role
            assert b"role" in response.content


@pytest.mark.parametrize("name", sorted(PROJECT_URLS))
def test_project_urls_of_unknown_projects_are_404(visitors, objects, name):
    method = PROJECT_URLS[name][1]
    url = url_for(name, objects, app_id="f" * 24)
    assert getattr(visitors[OWNER], method)(url).status_code == 404


@pytest.mark.parametrize("name", sorted(ACCOUNT_URLS))
def test_account_pages_are_for_anyone_logged_in(visitors, objects, name):
    got = answers(visitors, ACCOUNT_URLS[name], url_for(name, objects))
    assert login_redirect(got["anonymous"]), got["anonymous"]
    for who in VISITORS[1:]:
        assert got[who].status_code == 200, who


@pytest.mark.parametrize("name", sorted(PUBLIC_URLS))
def test_public_urls_answer_everyone_alike(visitors, objects, name):
    method, status = PUBLIC_URLS[name]
    got = answers(visitors, method, url_for(name, objects))
    assert {who: r.status_code for who, r in got.items()} == dict.fromkeys(VISITORS, status)


@pytest.mark.parametrize("name", sorted(API_URLS))
def test_api_urls_want_the_app_key_whoever_is_logged_in(visitors, objects, name):
    url = url_for(name, objects)
    got = answers(visitors, API_URLS[name], url)
    assert {who: r.status_code for who, r in got.items()} == dict.fromkeys(VISITORS, 401)
    aliases = aliases_of(name)
    if name.startswith("api-"):
        assert len(aliases) == 3  # trailing slash, /v1/ and /v1/ with the slash
    for alias in aliases:
        alias_url = "/" + alias
        for key in ("room_id", "conf_num", "date_from", "date_to"):
            alias_url = alias_url.replace(f"<str:{key}>", str({**ARGUMENT_VALUES, **objects}[key]))
        got = answers(visitors, API_URLS[name], alias_url)
        assert {who: r.status_code for who, r in got.items()} == dict.fromkeys(VISITORS, 401)


@pytest.mark.parametrize("name", sorted(RECORDING_FILE_URLS))
def test_recording_files_want_the_recording_credentials_whoever_is_logged_in(
    visitors, objects, name
):
    got = answers(visitors, "get", url_for(name, objects), HTTP_ACCEPT="text/html")
    assert {who: r.status_code for who, r in got.items()} == dict.fromkeys(VISITORS, 401)


@pytest.mark.parametrize("name", sorted(ADMIN_URLS) + admin_site_urls())
def test_admin_pages_send_everyone_but_staff_to_the_admin_login(visitors, objects, name):
    got = answers(visitors, "get", url_for(name, objects))
    for who, response in got.items():
        assert response.status_code == 302, (who, response.status_code)
        assert response["Location"].startswith(reverse("admin:login")), who


@pytest.mark.parametrize(
    "name", ["admin-health", "admin:recordings_recorderrequest_changelist", "admin:index"]
)
def test_superusers_open_the_admin_pages(client, objects, django_user_model, name):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "x"))
    assert client.get(url_for(name, objects)).status_code == 200


def test_video_recordings_of_a_chosen_project_answer_each_visitor_by_role(visitors, objects):
    url = url_for("recordings:video_report", objects) + f"?project={objects['app_id']}"
    got = answers(visitors, "get", url)
    assert login_redirect(got["anonymous"]), got["anonymous"]
    assert got["outsider"].status_code == 404
    assert {role: got[role].status_code for role in MEMBERS} == dict.fromkeys(MEMBERS, 200)
