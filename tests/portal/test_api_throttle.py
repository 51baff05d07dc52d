"""The APP_KEY failure throttle: per (APP_ID, client address), counting only
wrong keys that cost a PBKDF2 run, refusing before any hashing."""

from __future__ import annotations

import base64

import pytest

pytestmark = pytest.mark.django_db


def rooms(client, world, key: str, address: str = "203.0.113.7", **headers):
    token = base64.b64encode(f"{world.app_id}:{key}".encode()).decode()
    return client.get(
        "/video/v2/rooms", HTTP_AUTHORIZATION=f"Basic {token}", REMOTE_ADDR=address, **headers
    )


def test_a_repeated_known_wrong_key_is_refused_for_free_and_not_counted(client, world):
    # A media server with a stale key keeps getting 401, never 429.
    assert {rooms(client, world, "stale-key").status_code for _ in range(25)} == {401}
    assert rooms(client, world, world.created.app_key).status_code == 200


def test_fresh_wrong_keys_throttle_that_address_for_that_app_id_only(client, world, make_user):
    # Throttled before any hashing: even the right key, unless this process
    # verified it recently (then there is nothing to guess or to hash).
    from projects.actions.projects import do_create_project

    for n in range(10):
        assert rooms(client, world, f"guess-{n}").status_code == 401
    refused = rooms(client, world, "guess-10")
    assert refused.status_code == 429 and refused["Retry-After"] == "300"
    assert refused.json()["result"] == 1029
    assert rooms(client, world, world.created.app_key).status_code == 429  # not verified yet
    assert rooms(client, world, world.created.app_key, "198.51.100.1").status_code == 200
    other = do_create_project("Other", acting_user=make_user("dora"))
    token = base64.b64encode(f"{other.project.app_id}:{other.app_key}".encode()).decode()
    answer = client.get(
        "/video/v2/rooms", HTTP_AUTHORIZATION=f"Basic {token}", REMOTE_ADDR="203.0.113.7"
    )
    assert answer.status_code == 200


def test_behind_nginx_the_real_address_counts(client, world):
    for n in range(10):
        rooms(client, world, f"guess-{n}", "127.0.0.1", HTTP_X_REAL_IP="203.0.113.9")
    assert rooms(client, world, "guess-10", "127.0.0.1",
                 HTTP_X_REAL_IP="203.0.113.9").status_code == 429  # fmt: skip
    assert rooms(client, world, world.created.app_key, "127.0.0.1",
                 HTTP_X_REAL_IP="203.0.113.10").status_code == 200  # fmt: skip


def test_a_key_this_process_verified_is_not_throttled(client, world):
    assert rooms(client, world, world.created.app_key).status_code == 200
    for n in range(10):
        rooms(client, world, f"guess-{n}")
    assert rooms(client, world, "guess-10").status_code == 429
    assert rooms(client, world, world.created.app_key).status_code == 200
