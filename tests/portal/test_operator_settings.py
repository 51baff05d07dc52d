"""Misconfigured operator settings are a `manage.py check` message or a clear
page, never a 500: an http:// Google OAuth URI in production, a bad cache
URL, a bad OUTBOUND_ALLOWED_NETWORKS entry, an unreachable Redis."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest
from django.core.checks import run_checks
from django.urls import reverse

from delivery.forms import kind_form
from tests.factories import save_destination
from tests.servers import free_port
from tests.servers.portal import ROOT, PortalProcesses


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    portal = PortalProcesses(extra_env=env)
    try:
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=portal.env,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        portal.stop()


def test_an_http_google_uri_in_production_fails_the_check_with_its_name():
    done = manage("check", GOOGLE_OAUTH_TOKEN_URI="http://oauth.example.com/token")
    assert done.returncode != 0
    assert "(portal.E001) GOOGLE_OAUTH_TOKEN_URI must be an https:// URL" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_cache_url_fails_the_check_and_the_database_cache_is_used():
    done = manage("check", REDIS_URL="htp://cache.internal:6379")
    assert done.returncode != 0
    assert "(portal.E003) REDIS_URL must look like redis://host:6379/0" in done.stderr
    backend = manage(
        "shell", "-c", "from django.conf import settings; print(settings.CACHES['default']['BACKEND'])",
        REDIS_URL="htp://cache.internal:6379",
    )  # fmt: skip
    assert backend.stdout.split()[-1] == "django.core.cache.backends.db.DatabaseCache"


def test_a_missing_cache_table_is_named_by_the_database_check():
    portal = PortalProcesses()
    try:
        first = portal.manage("migrate", "--noinput", "-v0")
        assert "portal.W002" not in first.stderr
        # migrate creates the cache tables (portal.heartbeats); lose one, as a
        # database restored without it would.
        assert "portal.W002" not in portal.manage("check", "--database", "default").stderr
        portal.manage("shell", "-c", (
            "from django.db import connection;"
            "connection.cursor().execute('DROP TABLE portal_cache')"
        ))  # fmt: skip
        done = portal.manage("check", "--database", "default")
        assert "(portal.W002)" in done.stderr and "run `manage.py createcachetable`" in done.stderr
        portal.manage("createcachetable")
        assert "portal.W002" not in portal.manage("check", "--database", "default").stderr
    finally:
        portal.stop()


def test_a_bad_outbound_network_is_a_check_error(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = "127.0.0.0/8, 10.0.0.0/33"
    errors = [m for m in run_checks() if m.id == "portal.E002"]
    assert len(errors) == 1 and "'10.0.0.0/33' is not a network in CIDR form" in errors[0].msg


@pytest.mark.django_db
def test_the_google_connect_page_explains_an_http_uri_instead_of_crashing(
    client, world, settings
):
    settings.GOOGLE_OAUTH_CLIENT_ID, settings.GOOGLE_OAUTH_CLIENT_SECRET = "client", "secret"
    settings.GOOGLE_OAUTH_AUTH_URI = "http://accounts.example.com/o/oauth2/auth"
    form = kind_form("gdrive", {"folder": "Recordings"}, web=False)
    assert form.is_valid(), form.errors
    dest = save_destination(world.project, "gdrive", form, "drive", ["transcoded"], True)
    client.force_login(world.alice)
    page = client.get(
        reverse("delivery:google_connect", args=[world.app_id, dest.pk]), follow=True
    )
    assert page.status_code == 200
    assert "GOOGLE_OAUTH_AUTH_URI must be an https:// URL" in page.content.decode()


@pytest.mark.django_db
def test_an_unreachable_redis_leaves_the_api_working(client, world, settings):
    # A real Redis client against a port nobody listens on.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }

    def rooms(key: str) -> int:
        token = base64.b64encode(f"{world.app_id}:{key}".encode()).decode()
        return client.get("/video/v2/rooms", HTTP_AUTHORIZATION=f"Basic {token}").status_code

    assert rooms("wrong-key") == 401
    assert rooms(world.created.app_key) == 200


def test_an_idle_cluster_polls_the_orm_broker_every_100_ms_unless_q_poll_says_otherwise():
    # Half the poll is added, on average, to each hop of a delivery (session
    # end → delivery, delivery → file_transfer): bench/end_to_end.py.
    show = "from django.conf import settings; print(settings.Q_CLUSTER['poll'])"
    assert manage("shell", "-c", show).stdout.split()[-1] == "0.1"
    assert manage("shell", "-c", show, Q_POLL="0.5").stdout.split()[-1] == "0.5"
