"""Signed /dl/<token> links: no login, 72 hours, Range, refused when tampered;
served as data whatever the row says; on RECORDINGS_PUBLIC_BASE_URL when set."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import signing
from django.utils import timezone

from recordings.events import file_object
from recordings.links import link_for
from recordings.models import RecordingFile
from tests.recordings.seed import VIDEO, full_session, make_room
from tests.recordings.test_serving import PAGE, assert_served_as_data, hostile
from tests.servers.portal import ROOT, TEST_FERNET_KEY

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


# -- served as data ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, stored_type",
    [
        ("page.html", "text/html"),
        ("script.js", "text/javascript"),
        ("page.xhtml", "application/xhtml+xml"),
        ("picture.svg", "image/svg+xml"),
        ("page.html", ""),
    ],
)
def test_inline_1_cannot_make_a_stored_document_a_page(client, files, name, stored_type):
    bad = hostile(files["individual"].session, name, PAGE, stored_type)
    response = client.get(link_for(bad, inline=True))
    assert response.status_code == 200
    assert body(response) == PAGE
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")
    assert_served_as_data(response)


def test_a_document_stored_as_video_is_inline_but_sandboxed(client, files):
    # The type is only as good as the row; the headers hold even when it lies.
    liar = hostile(files["individual"].session, "page.mp4", PAGE, "video/mp4")
    response = client.get(link_for(liar, inline=True))
    assert response["Content-Disposition"].startswith("inline;")
    assert_served_as_data(response)


def test_chat_is_an_attachment_even_with_inline_1(client, files):
    response = client.get(link_for(files["chat"], inline=True))
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith("attachment;")
    assert_served_as_data(response)


@pytest.mark.parametrize("status", [200, 206, 304, 400, 404, 405, 410])
def test_every_answer_of_a_link_is_served_as_data(client, files, status):
    rf = files["transcoded"]
    url = link_for(rf, inline=True)
    if status == 206:
        response = client.get(url, HTTP_RANGE="bytes=0-9")
    elif status == 304:
        response = client.get(url, HTTP_IF_NONE_MATCH=client.head(url)["ETag"])
    elif status == 400:
        response = client.get("/dl/not-a-token")
    elif status == 404:
        RecordingFile.objects.filter(pk=rf.pk).delete()
        response = client.get(url)
    elif status == 405:
        response = client.post(url)
    elif status == 410:
        with time_machine.travel(NOW, tick=False):
            url = link_for(rf)
        with time_machine.travel(NOW + timedelta(hours=73), tick=False):
            response = client.get(url)
    else:
        response = client.get(url)
    assert response.status_code == status
    assert_served_as_data(response)


def test_the_poster_is_a_jpeg_whatever_its_name(client, files):
    response = client.get(link_for(files["transcoded"], poster=True), {"inline": "1"})
    assert response["Content-Type"] == "image/jpeg"
    assert response["Content-Disposition"].startswith("inline;")
    assert_served_as_data(response)


# -- RECORDINGS_PUBLIC_BASE_URL ------------------------------------------------------------------

FILES_ORIGIN = "https://files.example.net"


def test_without_a_file_origin_links_stay_on_the_portal(files, settings):
    settings.RECORDINGS_PUBLIC_BASE_URL = ""
    assert link_for(files["chat"]).startswith("/dl/")
    assert file_object(files["chat"])["url"].startswith(settings.PUBLIC_BASE_URL + "/recordings/")


def test_links_file_urls_and_webhooks_use_the_file_origin(client, world, files, settings):
    settings.RECORDINGS_PUBLIC_BASE_URL = FILES_ORIGIN
    assert link_for(files["chat"]).startswith(FILES_ORIGIN + "/dl/")
    assert link_for(files["transcoded"], poster=True).startswith(FILES_ORIGIN + "/dl/")
    assert files["chat"].public_url.startswith(FILES_ORIGIN + "/recordings/")
    assert file_object(files["individual"])["url"] == (FILES_ORIGIN + files["individual"].url_path)
    # The link still works when the file origin reaches this same Django.
    response = client.get(link_for(files["transcoded"], inline=True), HTTP_RANGE="bytes=0-4")
    assert response.status_code == 206 and body(response) == VIDEO[:5]


def test_the_archive_api_and_the_report_use_the_file_origin(client, world, files, settings):
    settings.RECORDINGS_PUBLIC_BASE_URL = FILES_ORIGIN
    token = base64.b64encode(f"{world.app_id}:{world.created.app_key}".encode()).decode()
    session = files["chat"].session
    archive = client.get(
        f"/video/v2/archive/conf_num/{session.conf_num}", HTTP_AUTHORIZATION=f"Basic {token}"
    ).json()["archive"][0]
    assert archive["chatdata"] == FILES_ORIGIN + files["chat"].url_path
    assert archive["recording"][0]["url"] == FILES_ORIGIN + files["individual"].url_path
    client.force_login(world.alice)
    day = session.started_at.date().isoformat()
    html = client.get(
        f"/projects/{world.app_id}/recordings/", {"from": day, "to": day}
    ).content.decode()
    links = re.findall(r'(?:href|src|poster)="([^"]*/dl/[^"]+)"', html)
    assert len(links) >= 6
    assert all(link.startswith(FILES_ORIGIN + "/dl/") for link in links), links
    page = client.get(f"/projects/{world.app_id}/recordings/files/{files['transcoded'].pk}/")
    assert f'src="{FILES_ORIGIN}/dl/' in page.content.decode()


def test_the_portal_pages_may_play_media_from_the_file_origin(tmp_path):
    # The page policy is built when the settings load: read it in a fresh process.
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO"))},
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATA_DIR": str(tmp_path),
        "SECRET_KEY": "file-origin-test-secret-key-" + "k" * 30,
        "FIELD_ENCRYPTION_KEYS": TEST_FERNET_KEY,
        "RECORDINGS_PUBLIC_BASE_URL": FILES_ORIGIN + "/",
    }
    code = (
        "from django.conf import settings; import json; "
        "print(json.dumps([settings.RECORDINGS_PUBLIC_BASE_URL, "
        "settings.CONTENT_SECURITY_POLICY['DIRECTIVES']]))"
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    origin, directives = json.loads(done.stdout.strip().splitlines()[-1])
    assert origin == FILES_ORIGIN
    assert directives["media-src"] == ["'self'", FILES_ORIGIN]
    assert directives["img-src"] == ["'self'", "data:", FILES_ORIGIN]
    assert directives["script-src"] == ["'self'"]


def test_refusals_load_nothing_and_lead_back_to_the_portal(client, files, settings):
    # They carry the file policy (default-src 'none'), and may be on the file origin.
    settings.RECORDINGS_PUBLIC_BASE_URL = FILES_ORIGIN
    for response in (client.get("/dl/not-a-token"), client.get(_expired_link(files["chat"]))):
        html = response.content.decode()
        assert response.status_code in (400, 410)
        assert "<link" not in html and "<script" not in html and "<form" not in html
        assert f'href="{settings.PUBLIC_BASE_URL}/projects/"' in html
        assert_served_as_data(response)


def _expired_link(rf) -> str:
    with time_machine.travel(NOW, tick=False):
        return link_for(rf)
