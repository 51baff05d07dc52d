"""Issue 5 without a browser: a staff member logs in over HTTP, resets the
recording password through the form, and HTTP Basic on a recording file then
accepts only the new password; the default password appears nowhere."""

from __future__ import annotations

import re

import pytest
import requests

from projects.models import Membership, Role
from tests.conftest import PASSWORD
from tests.factories import make_recording

NEW_PASSWORD = "Quiet-Lantern-4096"


def csrf_of(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


@pytest.mark.django_db(transaction=True)
def test_a_staff_member_resets_the_password_with_plain_http(live_server, world, make_user):
    staff = make_user("stella")
    Membership.objects.create(project=world.project, user=staff, role=Role.STAFF)
    recording = make_recording(world.project)
    file_url = live_server.url + recording.url_path
    old = (world.created.recording_username, world.created.recording_password)
    assert requests.get(file_url, auth=old, timeout=10).status_code == 200

    browser = requests.Session()
    login = live_server.url + "/accounts/login/"
    page = browser.get(login, timeout=10)
    response = browser.post(
        login, timeout=10, headers={"Referer": login},
        data={"username": "stella", "password": PASSWORD, "csrfmiddlewaretoken": csrf_of(page.text)},
    )  # fmt: skip
    assert response.url.endswith("/projects/")

    access = f"{live_server.url}/projects/{world.app_id}/settings/access/"
    form = browser.get(access, timeout=10)
    assert form.status_code == 200
    too_short = browser.post(
        access, timeout=10, headers={"Referer": access},
        data={"csrfmiddlewaretoken": csrf_of(form.text), "account_password": PASSWORD,
              "new_password": "Short-123", "confirm_password": "Short-123"},
    )  # fmt: skip
    assert "at least 10 characters" in too_short.text
    assert requests.get(file_url, auth=old, timeout=10).status_code == 200

    done = browser.post(
        access, timeout=10, headers={"Referer": access},
        data={"csrfmiddlewaretoken": csrf_of(too_short.text), "account_password": PASSWORD,
              "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
    )  # fmt: skip
    assert "password was changed" in done.text

    assert requests.get(file_url, auth=old, timeout=10).status_code == 401
    assert requests.get(file_url, auth=(old[0], NEW_PASSWORD), timeout=10).status_code == 200
    for path in ("", "recordings/", "settings/access/"):
        html = browser.get(f"{live_server.url}/projects/{world.app_id}/{path}", timeout=10).text
        assert old[1] not in html
        assert NEW_PASSWORD not in html


@pytest.mark.django_db(transaction=True)
def test_the_report_shows_the_default_credentials_until_they_change(live_server, world, client):
    make_recording(world.project)
    client.force_login(world.alice)
    report = f"/projects/{world.app_id}/recordings/"
    assert world.created.recording_password in client.get(report).content.decode()
    from projects.actions.projects import do_change_recording_password

    do_change_recording_password(world.project, NEW_PASSWORD, acting_user=world.alice)
    html = client.get(report).content.decode()
    assert world.created.recording_password not in html
    assert world.created.recording_username in html or "recording" in html
