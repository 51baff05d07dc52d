"""The Recordings report: filters, pages, links, player, chart, readable chat
and metadata, default credentials, and a constant number of queries."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from projects.actions.projects import do_change_recording_password
from recordings.links import make_token
from recordings.report_html import PageSigner
from tests.recordings.seed import VIDEO, add_file, full_session, make_room, make_session

DAY = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
RANGE = {"from": "2026-03-01", "to": "2026-03-31"}


@pytest.fixture
def report_url(world):
    return reverse("recordings:report", args=[world.app_id])


@pytest.fixture
def room(world):
    return make_room(world.project)


def test_outsiders_see_no_report(client, world, report_url, room):
    full_session(room, started_at=DAY)
    client.force_login(world.charlie)
    assert client.get(report_url, RANGE).status_code == 404


def test_members_see_sessions_with_grouped_signed_links_and_a_player(
    client, world, report_url, room
):
    session, files = full_session(room, started_at=DAY)
    client.force_login(world.bob)
    response = client.get(report_url, RANGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert session.conf_num in html
    for label in ("Individual recordings", "Live recordings", "Transcoded", "Chat", "Metadata"):
        assert label in html
    links = re.findall(r'href="(/dl/[^"]+)"', html)
    assert len(links) == 5
    assert client.get(links[0]).status_code == 200
    video = re.search(r'<video controls preload="metadata" src="([^"]+)" poster="([^"]+)"', html)
    assert video, "the composite plays in the page with its poster"
    assert (
        client.get(video.group(1).replace("&amp;", "&"), HTTP_RANGE="bytes=0-1").status_code == 206
    )
    assert client.get(video.group(2)).status_code == 200
    assert "1:05" in html  # duration
    assert "style=" not in html  # strict CSP: no inline styles


def test_the_chart_counts_sessions_and_storage_per_day(client, world, report_url, room):
    session, _ = full_session(room, started_at=DAY)
    make_session(room, started_at=DAY + timedelta(days=1))
    client.force_login(world.bob)
    response = client.get(report_url, RANGE)
    chart = response.context["chart"]
    assert chart.sessions == 2
    assert len(chart.days) == 31
    by_day = {d["day"].isoformat(): d for d in chart.days}
    assert by_day["2026-03-14"]["sessions"] == 1
    assert by_day["2026-03-14"]["bytes"] == session.total_size > 3 * len(VIDEO)
    assert by_day["2026-03-15"]["sessions"] == 1
    assert b'class="bar-sessions"' in response.content


def test_it_filters_by_room_and_dates(client, world, report_url, room):
    other_room = make_room(world.project, "Other")
    inside = make_session(room, started_at=DAY)
    elsewhere = make_session(other_room, started_at=DAY)
    too_late = make_session(room, started_at=datetime(2026, 4, 1, 0, 0, tzinfo=UTC))
    client.force_login(world.bob)
    html = client.get(report_url, {**RANGE, "room": room.room_id}).content.decode()
    assert inside.conf_num in html
    assert elsewhere.conf_num not in html
    assert too_late.conf_num not in html


@pytest.mark.parametrize(
    "params, message",
    [
        ({"from": "2026-03-10", "to": "2026-03-01"}, "swap the dates"),
        ({"from": "14/03/2026"}, "Enter a valid date"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "at most 366 days"),
        ({"room": "nope"}, "Select a valid choice"),
    ],
)
def test_bad_filters_say_what_to_fix(client, world, report_url, room, params, message):
    client.force_login(world.bob)
    response = client.get(report_url, params)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert response.context["page"] is None


def test_empty_states_say_what_to_do(client, world, report_url):
    client.force_login(world.bob)
    assert b"no rooms yet" in client.get(report_url).content
    make_room(world.project)
    assert b"Widen the date range" in client.get(report_url).content


def test_pages_go_older_and_newer(client, world, report_url, room):
    sessions = [make_session(room, started_at=DAY + timedelta(minutes=i)) for i in range(30)]
    client.force_login(world.bob)
    first = client.get(report_url, {**RANGE, "per_page": 25})
    rows = first.context["page"].rows
    assert [r.session.pk for r in rows] == [s.pk for s in reversed(sessions)][:25]
    older = client.get(report_url, {**RANGE, "per_page": 25, "older": first.context["page"].older})
    assert [r.session.pk for r in older.context["page"].rows] == [s.pk for s in sessions[:5][::-1]]
    assert older.context["page"].older is None
    newer = client.get(report_url, {**RANGE, "per_page": 25, "newer": older.context["page"].newer})
    assert [r.session.pk for r in newer.context["page"].rows] == [r.session.pk for r in rows]


def test_the_query_count_does_not_grow_with_the_page_size(client, world, report_url, room):
    for i in range(101):
        session = make_session(room, started_at=DAY + timedelta(minutes=i))
        add_file(session, "individual", "a.mp4", b"x" * 10)
        add_file(session, "chat", "chat.json", b"[]")
    client.force_login(world.bob)
    counts = []
    for per_page in (25, 100):
        caches["local"].clear()  # the chart's query counts too
        with CaptureQueriesContext(connection) as queries:
            response = client.get(report_url, {**RANGE, "per_page": per_page})
        assert len(response.context["page"].rows) == per_page
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
    assert counts[0] <= 12


def test_page_links_are_the_tokens_of_make_token_and_refuse_tampering(client, world, room):
    session, files = full_session(room, started_at=DAY)
    rf = files["individual"]
    with time_machine.travel(DAY, tick=False):
        signer = PageSigner()
        assert signer.sign_object([rf.pk]) == make_token(rf.pk)
        assert signer.sign_object([rf.pk, "poster"]) == make_token(rf.pk, poster=True)
        assert signer.file_token(rf.pk) == make_token(rf.pk)
        assert signer.file_token(rf.pk, poster=True) == make_token(rf.pk, poster=True)
        token = signer.file_token(rf.pk)
    with time_machine.travel(DAY + timedelta(hours=71, minutes=59), tick=False):
        assert client.get(f"/dl/{token}").status_code == 200
        tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
        assert client.get(f"/dl/{tampered}").status_code == 400
    with time_machine.travel(DAY + timedelta(hours=72, minutes=1), tick=False):
        assert client.get(f"/dl/{token}").status_code == 410


def test_default_credentials_show_until_changed(client, world, report_url):
    client.force_login(world.bob)
    password = world.created.recording_password
    assert password in client.get(report_url).content.decode()
    do_change_recording_password(world.project, "a new long password 42", acting_user=world.alice)
    html = client.get(report_url).content.decode()
    assert password not in html
    assert world.created.recording_username in html


def test_the_chat_transcript_reads_as_a_table(client, world, room):
    _, files = full_session(room, started_at=DAY)
    client.force_login(world.bob)
    url = reverse("recordings:file", args=[world.app_id, files["chat"].pk])
    html = client.get(url).content.decode()
    assert "Can you hear me?" in html
    assert "Hello &lt;b&gt;all&lt;/b&gt;" in html


def test_the_metadata_log_reads_as_a_table(client, world, room):
    _, files = full_session(room, started_at=DAY)
    client.force_login(world.bob)
    url = reverse("recordings:file", args=[world.app_id, files["metadata"].pk])
    html = client.get(url).content.decode()
    assert "user-joined" in html
    assert "role=moderator" in html
    assert "session-ended" in html


def test_a_broken_chat_file_is_explained(client, world, room):
    session = make_session(room, started_at=DAY)
    rf = add_file(session, "chat", "chat.json", b"{not json")
    client.force_login(world.bob)
    html = client.get(reverse("recordings:file", args=[world.app_id, rf.pk])).content.decode()
    assert "not valid JSON" in html


def test_file_pages_of_other_projects_are_404(client, world, room):
    _, files = full_session(room, started_at=DAY)
    client.force_login(world.charlie)
    url = reverse("recordings:file", args=[world.app_id, files["chat"].pk])
    assert client.get(url).status_code == 404


def test_a_deleted_room_with_recordings_stays_in_the_room_filter(client, world, report_url, room):
    from projects.actions.rooms import do_delete_room

    gone = make_room(world.project, "Gone")
    empty = make_room(world.project, "Never used")
    kept = make_session(gone, started_at=DAY)
    elsewhere = make_session(room, started_at=DAY)
    do_delete_room(gone, acting_user=world.alice)
    do_delete_room(empty, acting_user=world.alice)
    client.force_login(world.bob)
    html = client.get(report_url, RANGE).content.decode()
    assert f'<option value="{gone.room_id}">Gone (deleted)</option>' in html
    assert empty.room_id not in html  # nothing of it to find
    filtered = client.get(report_url, {**RANGE, "room": gone.room_id}).content.decode()
    assert kept.conf_num in filtered and elsewhere.conf_num not in filtered
