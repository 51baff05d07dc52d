"""Protected recording URLs: HTTP Basic with the project's recording
credentials (one realm per project), conditional and Range requests,
throttling, X-Accel-Redirect, and files served as data, never as pages."""

from __future__ import annotations

import base64
import hashlib

import pytest
from django.core.cache import cache
from django.utils import timezone

from portal.basic_auth import basic_challenge
from projects.actions.projects import do_create_project
from projects.models import AuditEvent
from recordings import throttle
from recordings.models import RecordingFile
from recordings.serving import FILE_SECURITY_HEADERS, may_be_inline, realm_of, served_type
from tests.recordings.seed import VIDEO, add_file, full_session, make_room

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


def test_browsers_without_credentials_get_a_basic_challenge(client, world, recording):
    rf, _ = recording
    response = client.get(rf.url_path, HTTP_ACCEPT=HTML)
    assert response.status_code == 401
    app_id = world.project.app_id
    assert response["WWW-Authenticate"] == f'Basic realm="Recordings of {app_id}", charset="UTF-8"'


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
    other = do_create_project("Beta", acting_user=world.charlie)
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


# -- realm -------------------------------------------------------------------------------------


def test_each_project_has_its_own_realm(client, world, recording):
    rf, _ = recording
    other = do_create_project("Beta", acting_user=world.charlie)
    other_rf = full_session(make_room(other.project))[1]["transcoded"]
    mine = client.get(rf.url_path, HTTP_ACCEPT=HTML)["WWW-Authenticate"]
    theirs = client.get(other_rf.url_path, HTTP_ACCEPT=HTML)["WWW-Authenticate"]
    assert mine != theirs
    assert f'"{realm_of(other.project.app_id)}"' in theirs


@pytest.mark.parametrize(
    "name, realm",
    [
        ("Plain name", "Plain name"),
        ('Quote" , realm="evil', "Quote , realm=evil"),
        ("Back\\slash\r\nSet-Cookie: x=1", "BackslashSet-Cookie: x=1"),
        ("Caf\u00e9 \u65e5\u672c\x00\x7f", "Cafe"),
        ('""\x01', "Protected"),
    ],
)
def test_the_realm_is_printable_ascii_without_quotes(name, realm):
    assert basic_challenge(name) == f'Basic realm="{realm}", charset="UTF-8"'


def test_a_hostile_app_id_in_the_url_cannot_break_the_challenge(client, recording):
    rf, _ = recording
    path = rf.url_path.replace(rf.project.app_id, "x%22%2C%20realm%3D%22y%0d%0a")
    response = client.get(path, HTTP_ACCEPT=HTML)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == (
        'Basic realm="Recordings of x, realm=y", charset="UTF-8"'
    )


# -- files served as data, never as pages ---------------------------------------------------------


@pytest.mark.parametrize(
    "content_type, inline",
    [
        ("video/mp4", True),
        ("video/x-matroska", True),
        ("video/webm", True),
        ("audio/mp4", True),
        ("audio/ogg", True),
        ("image/jpeg", True),
        ("application/json", False),
        ("application/octet-stream", False),
        ("image/svg+xml", False),
        ("image/png", False),
        ("text/html", False),
        ("text/plain", False),
        ("application/xhtml+xml", False),
        ("video/evil+xml", False),
        ("video/mp4; x=<html>", False),
    ],
)
def test_only_media_and_jpeg_may_be_inline(content_type, inline):
    assert may_be_inline(content_type) is inline


@pytest.mark.parametrize(
    "stored, served",
    [
        ("video/mp4", "video/mp4"),
        ("Video/MP4", "video/mp4"),
        ("audio/mpeg", "audio/mpeg"),
        ("application/json", "application/json"),
        ("image/jpeg", "image/jpeg"),
        ("text/html", "application/octet-stream"),
        ("text/html; charset=utf-8", "application/octet-stream"),
        ("application/javascript", "application/octet-stream"),
        ("image/svg+xml", "application/octet-stream"),
        ("video/mp4; codecs=x", "application/octet-stream"),
        ("video/", "application/octet-stream"),
        ("video/evil+xml", "application/octet-stream"),
        ("audio/x-evil+xml", "application/octet-stream"),
        ("", "application/octet-stream"),
    ],
)
def test_only_types_the_portal_knows_are_served(stored, served):
    assert served_type(stored) == served


def assert_served_as_data(response) -> None:
    for name, value in FILE_SECURITY_HEADERS.items():
        assert response[name] == value, name
    # django-csp left it alone: exactly the file policy, not the portal's page policy.
    assert response["Content-Security-Policy"] == ("default-src 'none'; media-src 'self'; sandbox")


def hostile(session, name: str, content: bytes, stored_type: str) -> RecordingFile:
    """A row as an older or hostile ingest could have left it: the client's type kept."""
    rf = add_file(session, RecordingFile.Type.INDIVIDUAL, name, content)
    RecordingFile.objects.filter(pk=rf.pk).update(content_type=stored_type)
    rf.refresh_from_db()
    return rf


PAGE = b"<!doctype html><script>document.title = 'pwned'</script>"


@pytest.mark.parametrize(
    "name, stored_type, served",
    [
        ("page.html", "text/html", "application/octet-stream"),
        ("page.html", "", "application/octet-stream"),
        ("script.js", "application/javascript", "application/octet-stream"),
        ("picture.svg", "image/svg+xml", "application/octet-stream"),
        ("page.json", "application/json", "application/json"),
    ],
)
def test_a_stored_document_is_an_attachment_of_a_known_type(
    client, recording, name, stored_type, served
):
    rf, auth = recording
    bad = hostile(rf.session, name, PAGE, stored_type)
    response = client.get(bad.url_path, HTTP_AUTHORIZATION=auth, HTTP_ACCEPT=HTML)
    assert response.status_code == 200
    assert content(response) == PAGE
    assert response["Content-Type"] == served
    assert response["Content-Disposition"].startswith("attachment;")
    assert_served_as_data(response)


def test_media_is_still_shown_inline(client, recording):
    rf, auth = recording
    response = client.get(rf.url_path, HTTP_AUTHORIZATION=auth)
    assert response["Content-Type"] == "video/mp4"
    assert response["Content-Disposition"].startswith("inline;")
    assert_served_as_data(response)


def _answer(client, world, rf, auth, status):
    url = rf.url_path
    if status == 206:
        return client.get(url, HTTP_AUTHORIZATION=auth, HTTP_RANGE="bytes=0-9")
    if status == 304:
        etag = client.head(url, HTTP_AUTHORIZATION=auth)["ETag"]
        return client.get(url, HTTP_AUTHORIZATION=auth, HTTP_IF_NONE_MATCH=etag)
    if status == 416:
        return client.get(url, HTTP_AUTHORIZATION=auth, HTTP_RANGE="bytes=99999-")
    if status == 401:
        return client.get(url, HTTP_AUTHORIZATION=basic("x", "y"))
    if status == 403:
        return client.get(url)
    if status == 404:
        return client.get(url.replace(rf.name, "nope.mp4"), HTTP_AUTHORIZATION=auth)
    if status == 405:
        return client.post(url, HTTP_AUTHORIZATION=auth)
    if status == 410:
        RecordingFile.objects.filter(pk=rf.pk).update(expired_at=timezone.now())
        return client.get(url, HTTP_AUTHORIZATION=auth, HTTP_ACCEPT=HTML)
    if status == 429:
        for _ in range(throttle.FAILURE_LIMIT):
            client.get(url, HTTP_AUTHORIZATION=basic("x", "guess"))
        return client.get(url, HTTP_AUTHORIZATION=auth)
    return (
        client.head(url, HTTP_AUTHORIZATION=auth)
        if status == "HEAD"
        else client.get(url, HTTP_AUTHORIZATION=auth)
    )


@pytest.mark.parametrize("status", [200, "HEAD", 206, 304, 416, 401, 403, 404, 405, 410, 429])
def test_every_answer_of_the_protected_url_is_served_as_data(client, world, recording, status):
    rf, auth = recording
    response = _answer(client, world, rf, auth, status)
    assert response.status_code == (200 if status == "HEAD" else status)
    assert_served_as_data(response)


def test_the_x_accel_answer_is_served_as_data_too(client, settings, recording):
    rf, auth = recording
    bad = hostile(rf.session, "page.html", PAGE, "text/html")
    settings.RECORDINGS_X_ACCEL_PREFIX = "/_protected"
    response = client.get(bad.url_path, HTTP_AUTHORIZATION=auth)
    assert response["X-Accel-Redirect"] == f"/_protected/{bad.storage_path}"
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")
    assert_served_as_data(response)
