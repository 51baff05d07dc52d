"""Video → Recordings: the Recordings report across the user's projects, one
chosen with ?project= — for the owner (alice), a member (bob) and an
outsider (charlie)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.cache import cache, caches
from django.db import connection
from django.test.utils import CaptureQueriesContext

from projects.actions.projects import do_change_recording_password, do_create_project
from tests.recordings.seed import add_file, full_session, make_room, make_session

pytestmark = pytest.mark.django_db

URL = "/video/recordings/"
DAY = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
RANGE = {"from": "2026-03-01", "to": "2026-03-31"}


@pytest.fixture
def beta(world):
    """alice's second project; bob is not a member of it."""
    return do_create_project("Beta", acting_user=world.alice)


@pytest.fixture
def sessions(world, beta):
    alpha_session, _ = full_session(make_room(world.project, "Alpha room"), started_at=DAY)
    beta_session, _ = full_session(make_room(beta.project, "Beta room"), started_at=DAY)
    return alpha_session, beta_session


def test_the_owner_picks_any_of_her_projects(client, world, beta, sessions):
    alpha_session, beta_session = sessions
    client.force_login(world.alice)
    first = client.get(URL, RANGE)
    assert first.status_code == 200
    html = first.content.decode()
    assert alpha_session.conf_num in html and beta_session.conf_num not in html  # Alpha by name
    assert world.created.recording_password in html  # the default credentials, at the top
    options = re.findall(r'<option value="([^"]+)"( selected)?>(Alpha|Beta)</option>', html)
    assert options == [(world.app_id, " selected", "Alpha"), (beta.project.app_id, "", "Beta")]
    assert ">Apply</button>" in html

    html = client.get(URL, {**RANGE, "project": beta.project.app_id}).content.decode()
    assert beta_session.conf_num in html and alpha_session.conf_num not in html
    assert beta.recording_password in html and world.created.recording_password not in html


def test_a_member_sees_only_the_projects_he_belongs_to(client, world, beta, sessions):
    alpha_session, _ = sessions
    client.force_login(world.bob)
    html = client.get(URL, RANGE).content.decode()
    assert alpha_session.conf_num in html
    assert beta.project.app_id not in html and "Beta" not in html
    assert client.get(URL, {"project": beta.project.app_id}).status_code == 404


def test_an_outsider_gets_404_for_someone_elses_project(client, world, beta, sessions):
    client.force_login(world.charlie)
    response = client.get(URL)
    assert response.status_code == 200
    assert b"not a member of any project" in response.content
    for app_id in (world.app_id, beta.project.app_id, "nonexistent"):
        assert client.get(URL, {"project": app_id}).status_code == 404


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get(URL)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_top_navigation_leads_there(client, world):
    client.force_login(world.bob)
    html = client.get("/projects/").content.decode()
    assert f'<a href="{URL}">Video → Recordings</a>' in html
    assert 'aria-current="page">Video → Recordings</a>' in client.get(URL).content.decode()


def test_it_filters_by_room_and_dates_and_forgets_a_room_of_another_project(
    client, world, beta, sessions
):
    alpha_session, beta_session = sessions
    room = alpha_session.room
    elsewhere = make_session(make_room(world.project, "Other"), started_at=DAY)
    too_late = make_session(room, started_at=DAY + timedelta(days=30))
    client.force_login(world.alice)
    html = client.get(URL, {**RANGE, "room": room.room_id}).content.decode()
    assert alpha_session.conf_num in html
    assert elsewhere.conf_num not in html and too_late.conf_num not in html
    # Switching to Beta with Alpha's room still in the query: all of Beta's rooms.
    switched = client.get(URL, {**RANGE, "room": room.room_id, "project": beta.project.app_id})
    assert beta_session.conf_num in switched.content.decode()
    assert switched.context["form"].cleaned_data["room"] == ""


def test_pages_go_older_and_newer_within_the_chosen_project(client, world, beta):
    room = make_room(beta.project)
    made = [make_session(room, started_at=DAY + timedelta(minutes=i)) for i in range(30)]
    make_session(make_room(world.project), started_at=DAY)
    client.force_login(world.alice)
    params = {**RANGE, "per_page": 25, "project": beta.project.app_id}
    first = client.get(URL, params)
    page = first.context["page"]
    assert [r.session.pk for r in page.rows] == [s.pk for s in reversed(made)][:25]
    older_link = re.search(r'href="\?([^"]*older=[^"]*)"', first.content.decode()).group(1)
    assert f"project={beta.project.app_id}" in older_link
    older = client.get(URL + "?" + older_link.replace("&amp;", "&"))
    assert [r.session.pk for r in older.context["page"].rows] == [s.pk for s in made[:5][::-1]]
    newer = client.get(URL, {**params, "newer": older.context["page"].newer})
    assert [r.session.pk for r in newer.context["page"].rows] == [r.session.pk for r in page.rows]


def test_the_query_count_does_not_grow_with_the_page_size(client, world, beta):
    room = make_room(world.project)
    for i in range(101):
        session = make_session(room, started_at=DAY + timedelta(minutes=i))
        add_file(session, "individual", "a.mp4", b"x" * 10)
        add_file(session, "chat", "chat.json", b"[]")
    client.force_login(world.alice)
    counts = []
    for per_page in (25, 100):
        cache.clear()
        caches["local"].clear()  # the chart's memo: its query counts too
        with CaptureQueriesContext(connection) as queries:
            response = client.get(URL, {**RANGE, "per_page": per_page, "project": world.app_id})
        assert len(response.context["page"].rows) == per_page
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
    assert counts[0] <= 14, counts


def test_download_links_work_for_72_hours(client, world, sessions):
    client.force_login(world.bob)
    with time_machine.travel(DAY, tick=False):
        html = client.get(URL, RANGE).content.decode()
    links = re.findall(r'href="(/dl/[^"]+)"', html)
    assert len(links) == 5
    client.logout()  # the links need no login
    with time_machine.travel(DAY + timedelta(hours=71, minutes=59), tick=False):
        assert client.get(links[0]).status_code == 200
    with time_machine.travel(DAY + timedelta(hours=72, minutes=1), tick=False):
        assert client.get(links[0]).status_code == 410


def test_changed_credentials_are_no_longer_shown(client, world):
    do_change_recording_password(world.project, "a new long password 42", acting_user=world.alice)
    client.force_login(world.bob)
    html = client.get(URL).content.decode()
    assert world.created.recording_password not in html
    assert world.created.recording_username in html
