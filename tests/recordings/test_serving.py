"""Protected recording URLs: HTTP Basic with the project's recording
credentials, conditional and Range requests, throttling, X-Accel-Redirect."""

from __future__ import annotations

import base64
import hashlib

import pytest
from django.core.cache import cache
from django.utils import timezone

from projects.models import AuditEvent
from projects.services import do_create_project
from recordings import throttle
from tests.recordings.seed import VIDEO, full_session, make_room

HTML = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture(autouse=True)
def _clear_throttle(db):
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def recording(world):
    session, files = full_session(make_room(world.project))
    rf = files["transcoded"]
    auth = basic(world.created.recording_username, world.created.recording_password)
    return rf, auth


def content(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_programs_without_credentials_get_403(client, recording):
    rf, _ = recording
    response = client.get(rf.url_path)
    assert response.status_code == 403
    assert "WWW-Authenticate" not in response


def test_browsers_without_credentials_get_a_basic_challenge(client, recording):
    rf, _ = recording
    response = client.get(rf.url_path, HTTP_ACCEPT=HTML)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith('Basic realm="Recordings"')


def test_it_rejects_wrong_password(client, world, recording):
    rf, _ = recording
    wrong = basic(world.created.recording_username, "not-the-password")
    response = client.get(rf.url_path, HTTP_AUTHORIZATION=wrong)
    assert response.status_code == 401
    assert "WWW-Authenticate" in response
    assert b"not-the-password" not in response.content


@pytest.mark.parametrize("username", ["rëc_ünïcødé", "日本", "\x00"])
def test_a_non_ascii_username_is_refused_not_a_crash(client, world, recording, username):
    rf, _ = recording
    response = client.get(rf.url_path, HTTP_AUTHORIZATION=basic(username, "whatever-pw"))
    assert response.status_code == 401


def test_it_refuses_credentials_of_another_project(client, world, recording):
    rf, _ = recording
    other = do_create_project("Beta", owner=world.charlie)
    auth = basic(other.recording_username, other.recording_password)
    assert client.get(rf.url_path, HTTP_AUTHORIZATION=auth).status_code == 401


def test_it_serves_the_whole_file_with_validators(client, recording):
    rf, auth = recording
    response = client.get(rf.url_path, HTTP_AUTHORIZATION=auth)
    assert response.status_code == 200
    assert content(response) == VIDEO
    assert response["Content-Length"] == str(len(VIDEO))
    assert response["Content-Type"] == "video/mp4"
    assert response["Accept-Ranges"] == "bytes"
    assert response["ETag"] == f'"{hashlib.sha256(VIDEO).hexdigest()[:40]}"'
    assert response["Last-Modified"]


def test_it_serves_a_single_range(client, recording):
    rf, auth = recording
    response = client.get(rf.url_path, HTTP_AUTHORIZATION=auth, HTTP_RANGE="bytes=100-299")
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 100-299/{len(VIDEO)}"
    assert response["Content-Length"] == "200"
    assert content(response) == VIDEO[100:300]


@pytest.mark.parametrize(
    "header, start, end",
    [("bytes=10240-", None, None), ("bytes=-100", 10140, 10239), ("bytes=10000-", 10000, 10239)],
)
def test_it_handles_open_and_suffix_ranges(client, recording, header, start, end):
    rf, auth = recording
    response = client.get(rf.url_path, HTTP_AUTHORIZATION=auth, HTTP_RANGE=header)
    if start is None:
        assert response.status_code == 416
        assert response["Content-Range"] == f"bytes */{len(VIDEO)}"
    else:
        assert response.status_code == 206
        assert content(response) == VIDEO[start : end + 1]


def test_several_ranges_get_the_whole_file(client, recording):
    rf, auth = recording
    response = client.get(rf.url_path, HTTP_AUTHORIZATION=auth, HTTP_RANGE="bytes=0-1,5-6")
    assert response.status_code == 200
    assert content(response) == VIDEO


def test_head_sends_headers_only(client, recording):
    rf, auth = recording
    response = client.head(rf.url_path, HTTP_AUTHORIZATION=auth)
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(VIDEO))
    assert content(response) == b""


def test_conditional_requests_answer_304(client, recording):
    rf, auth = recording
    first = client.get(rf.url_path, HTTP_AUTHORIZATION=auth)
    etag, modified = first["ETag"], first["Last-Modified"]
    by_tag = client.get(rf.url_path, HTTP_AUTHORIZATION=auth, HTTP_IF_NONE_MATCH=etag)
    assert by_tag.status_code == 304
    by_date = client.get(rf.url_path, HTTP_AUTHORIZATION=auth, HTTP_IF_MODIFIED_SINCE=modified)
    assert by_date.status_code == 304
    changed = client.get(rf.url_path, HTTP_AUTHORIZATION=auth, HTTP_IF_NONE_MATCH='"other"')
    assert changed.status_code == 200


def test_if_range_with_a_stale_etag_sends_the_whole_file(client, recording):
    rf, auth = recording
    etag = client.head(rf.url_path, HTTP_AUTHORIZATION=auth)["ETag"]
    fresh = client.get(
        rf.url_path, HTTP_AUTHORIZATION=auth, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=etag
    )
    assert fresh.status_code == 206
    stale = client.get(
        rf.url_path, HTTP_AUTHORIZATION=auth, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"old"'
    )
    assert stale.status_code == 200


def test_unknown_files_are_404_after_authentication(client, world, recording):
    rf, auth = recording
    response = client.get(rf.url_path.replace(rf.name, "nope.mp4"), HTTP_AUTHORIZATION=auth)
    assert response.status_code == 404


def test_expired_files_answer_410(client, recording):
    rf, auth = recording
    rf.expired_at = timezone.now()
    rf.save(update_fields=["expired_at"])
    response = client.get(rf.url_path, HTTP_AUTHORIZATION=auth)
    assert response.status_code == 410
    assert b"retention" in response.content


def test_repeated_failures_are_throttled_and_audited_once(client, world, recording):
    rf, auth = recording
    wrong = basic(world.created.recording_username, "guess")
    for _ in range(throttle.FAILURE_LIMIT):
        assert client.get(rf.url_path, HTTP_AUTHORIZATION=wrong).status_code == 401
    assert client.get(rf.url_path, HTTP_AUTHORIZATION=wrong).status_code == 429
    assert client.get(rf.url_path, HTTP_AUTHORIZATION=auth).status_code == 429
    events = AuditEvent.objects.filter(action=AuditEvent.Action.BASIC_AUTH_FAILURES)
    assert events.count() == 1
    assert events.get().ip_address == "127.0.0.1"
    assert "guess" not in str(events.get().detail)


def test_x_accel_redirect_hands_the_bytes_to_nginx(client, settings, recording):
    rf, auth = recording
    settings.RECORDINGS_X_ACCEL_PREFIX = "/_protected/"
    response = client.get(rf.url_path, HTTP_AUTHORIZATION=auth)
    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == f"/_protected/{rf.storage_path}"
    assert content(response) == b""
    assert client.get(rf.url_path).status_code == 403
