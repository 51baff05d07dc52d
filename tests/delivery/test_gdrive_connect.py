"""The "Connect Google account" flow of the delivery settings page, against
the local double of Google's OAuth server and Drive (tests/servers/gdrive_double.py)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.conf import settings
from django.db import connection
from django.test import Client
from django.urls import reverse

from delivery.forms import kind_form
from delivery.models import DeliveryDestination
from projects.models import AuditEvent, Role
from tests.factories import save_destination
from tests.servers import gdrive_double as servers

gdrive_double = servers.gdrive_double
gdrive = servers.gdrive

EMAIL = "owner.of.drive@example.com"


@pytest.fixture
def destination(world) -> DeliveryDestination:
    form = kind_form("gdrive", {"folder": "Recordings/Portal"}, web=False)
    assert form.is_valid(), form.errors
    return save_destination(world.project, "gdrive", form, "drive", ["transcoded"], True)


def url(world, name, dest) -> str:
    return reverse(f"delivery:{name}", args=[world.app_id, dest.pk])


def start(client, world, dest) -> str:
    """Press "Connect Google account"; return where the browser is sent."""
    response = client.get(url(world, "google_connect", dest))
    assert response.status_code == 302
    return response["Location"]


def consent(double, location: str) -> str:
    """The user consents at (the double of) Google; return the callback path+query."""
    back = requests.get(location, allow_redirects=False, timeout=10)
    assert back.status_code == 302
    callback = urlsplit(back.headers["Location"])
    assert f"{callback.scheme}://{callback.netloc}" == settings.PUBLIC_BASE_URL
    return f"{callback.path}?{callback.query}"


def connect(client, world, dest, double) -> None:
    response = client.get(consent(double, start(client, world, dest)))
    assert response.status_code == 302, response.content[:500]


def test_the_button_redirects_to_google_with_the_right_parameters(
    client, world, destination, gdrive
):
    client.force_login(world.alice)
    location = start(client, world, destination)
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert location.startswith(gdrive.base_url + "o/oauth2/auth?")
    assert query["client_id"] == gdrive.client_id
    assert query["redirect_uri"] == settings.PUBLIC_BASE_URL + "/delivery/google/callback/"
    assert query["scope"] == "https://www.googleapis.com/auth/drive.file"
    assert query["access_type"] == "offline" and query["prompt"] == "consent"
    assert query["response_type"] == "code" and query["state"]


def test_the_settings_page_offers_to_connect(client, world, destination, gdrive):
    client.force_login(world.alice)
    html = client.get(url(world, "edit", destination)).content.decode()
    assert "Connect Google account" in html
    assert 'name="refresh_token"' not in html


def test_the_callback_stores_the_refresh_token_encrypted_and_shows_the_email(
    client, world, destination, gdrive
):
    gdrive.consent_email = EMAIL
    client.force_login(world.alice)
    connect(client, world, destination, gdrive)
    destination.refresh_from_db()
    token = destination.secrets["refresh_token"]
    assert token in gdrive.grants and destination.config["account_email"] == EMAIL
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT secrets, config FROM {DeliveryDestination._meta.db_table} WHERE id = %s",
            [destination.pk],
        )
        raw = " ".join(str(v) for v in cursor.fetchone())
    assert token not in raw
    html = client.get(url(world, "edit", destination)).content.decode()
    assert EMAIL in html and "Disconnect" in html and token not in html
    event = AuditEvent.objects.get(detail__change="Google account connected")
    assert event.actor == world.alice and event.detail["account_email"] == EMAIL
    assert token not in str(list(AuditEvent.objects.values_list("detail", flat=True)))


def test_the_connected_account_delivers_a_probe(client, world, destination, gdrive):
    client.force_login(world.alice)
    connect(client, world, destination, gdrive)
    response = client.post(url(world, "test", destination), follow=True)
    assert "passed: Wrote and removed a probe" in response.content.decode()


def test_a_callback_from_another_users_session_is_refused(
    client, world, destination, gdrive, member
):
    client.force_login(world.alice)
    callback = consent(gdrive, start(client, world, destination))
    other = Client()
    member(Role.ADMIN, other)
    response = other.get(callback)
    assert response.status_code == 400
    assert "state mismatch" in response.content.decode()
    destination.refresh_from_db()
    assert "refresh_token" not in destination.secrets


def test_a_forged_or_reused_state_is_refused(client, world, destination, gdrive):
    client.force_login(world.alice)
    callback = consent(gdrive, start(client, world, destination))
    path, query = callback.split("?", 1)
    params = {k: v[0] for k, v in parse_qs(query).items()}
    forged = client.get(path, {**params, "state": params["state"][:-3] + "abc"})
    assert forged.status_code == 400 and "state mismatch" in forged.content.decode()
    assert client.get(callback).status_code == 302
    reused = client.get(callback)
    assert reused.status_code == 400


def test_a_viewer_cannot_start_or_finish_the_flow(client, world, destination, gdrive):
    client.force_login(world.alice)
    callback = consent(gdrive, start(client, world, destination))
    client.force_login(world.bob)
    assert client.get(url(world, "google_connect", destination)).status_code == 403
    assert client.get(callback).status_code == 403


def test_disconnect_revokes_the_grant_and_forgets_it(client, world, destination, gdrive):
    client.force_login(world.alice)
    connect(client, world, destination, gdrive)
    destination.refresh_from_db()
    token = destination.secrets["refresh_token"]
    response = client.post(url(world, "google_disconnect", destination), follow=True)
    assert "disconnected and its access revoked" in response.content.decode()
    assert gdrive.grants[token].revoked
    destination.refresh_from_db()
    assert "refresh_token" not in destination.secrets
    assert "account_email" not in destination.config
    assert "Connect Google account" in response.content.decode()


def test_a_revoked_grant_shows_reconnect_google_account(client, world, destination, gdrive):
    client.force_login(world.alice)
    connect(client, world, destination, gdrive)
    gdrive.revoke_all()  # the user removed the portal's access in their Google account
    response = client.post(url(world, "test", destination), {"back": "edit"}, follow=True)
    html = response.content.decode()
    assert "reconnect the Google account" in html
    assert "Reconnect Google account" in html
    assert (
        "Reconnect Google account"
        in client.get(reverse("delivery:settings", args=[world.app_id])).content.decode()
    )

    gdrive.consent_email = EMAIL
    connect(client, world, destination, gdrive)
    html = client.get(url(world, "edit", destination)).content.decode()
    assert "Reconnect Google account" not in html and EMAIL in html


def test_a_delivery_that_finds_the_grant_revoked_asks_to_reconnect(
    client, world, destination, gdrive
):
    from delivery.models import Delivery
    from delivery.tasks import run_delivery
    from tests.delivery.engine_support import make_session

    client.force_login(world.alice)
    connect(client, world, destination, gdrive)
    gdrive.revoke_all()
    session = make_session(world.project, {"transcoded.mp4": ("transcoded", b"video bytes")})
    delivery = Delivery.objects.create(session=session, destination=destination)
    run_delivery(delivery.pk)

    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.FAILED
    html = client.get(reverse("delivery:settings", args=[world.app_id])).content.decode()
    assert "Reconnect Google account" in html
