"""Signed /dl/<token> links: no login, 72 hours, Range, refused when tampered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import signing
from django.utils import timezone

from recordings.links import link_for
from tests.recordings.seed import VIDEO, full_session, make_room

NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)


@pytest.fixture
def files(world):
    return full_session(make_room(world.project))[1]


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_a_link_works_without_login_as_an_attachment(client, files):
    response = client.get(link_for(files["transcoded"]))
    assert response.status_code == 200
    assert body(response) == VIDEO
    assert response["Content-Disposition"].startswith("attachment;")


def test_inline_links_seek_with_range(client, files):
    response = client.get(link_for(files["transcoded"], inline=True), HTTP_RANGE="bytes=5-9")
    assert response.status_code == 206
    assert body(response) == VIDEO[5:10]
    assert response["Content-Disposition"].startswith("inline;")


def test_a_link_works_at_71h59m_and_is_gone_at_72h01m(client, files):
    with time_machine.travel(NOW, tick=False):
        url = link_for(files["individual"])
    with time_machine.travel(NOW + timedelta(hours=71, minutes=59), tick=False):
        assert client.get(url).status_code == 200
    with time_machine.travel(NOW + timedelta(hours=72, minutes=1), tick=False):
        response = client.get(url)
    assert response.status_code == 410
    assert b"This link expired" in response.content
    assert b"Recordings report" in response.content


def test_the_lifetime_follows_the_setting(client, settings, files):
    settings.RECORDING_LINK_MAX_AGE_HOURS = 1
    with time_machine.travel(NOW, tick=False):
        url = link_for(files["individual"])
    with time_machine.travel(NOW + timedelta(minutes=61), tick=False):
        assert client.get(url).status_code == 410


@pytest.mark.parametrize("change", ["flip", "cut", "garbage"])
def test_it_refuses_tampered_tokens(client, files, change):
    url = link_for(files["chat"])
    if change == "flip":
        url = url[:-3] + ("A" if url[-3] != "A" else "B") + url[-2:]
    elif change == "cut":
        url = url[:-6]
    else:
        url = "/dl/not-a-token"
    response = client.get(url)
    assert response.status_code == 400
    assert b"not valid" in response.content


def test_a_token_for_another_file_id_cannot_be_forged(client, files):
    url = link_for(files["chat"])
    payload, timestamp, signature = url.rsplit("/", 1)[1].split(":")
    other = signing.b64_encode(f"[{files['metadata'].pk}]".encode()).decode()
    assert other != payload
    response = client.get(f"/dl/{other}:{timestamp}:{signature}")
    assert response.status_code == 400


def test_poster_links_serve_the_poster(client, files):
    response = client.get(link_for(files["transcoded"], poster=True))
    assert response.status_code == 200
    assert body(response) == b"\xff\xd8jpg"
    assert response["Content-Type"] == "image/jpeg"


def test_links_to_expired_files_say_so(client, files):
    rf = files["live"]
    url = link_for(rf)
    rf.expired_at = timezone.now()
    rf.save(update_fields=["expired_at"])
    response = client.get(url)
    assert response.status_code == 410
    assert b"retention" in response.content


def test_links_to_deleted_files_are_404(client, files):
    url = link_for(files["live"])
    files["live"].delete()
    assert client.get(url).status_code == 404
