"""The failure throttles hold across gunicorn workers: real gunicorn with two
worker processes, the database cache by default and Redis with REDIS_URL."""

from __future__ import annotations

import pytest
import requests

from tests.servers import redis_server
from tests.servers.portal import PortalProcesses

pytestmark = pytest.mark.slow
redis_url = redis_server.redis_url


def wrong_keys_until_refused(portal: PortalProcesses, credentials: dict) -> list[int]:
    url = f"{portal.public_url}/video/v2/rooms"
    # A fresh connection per request, so both workers take their share.
    return [
        requests.get(url, auth=(credentials["APP_ID"], f"guess-{n}"), timeout=30,
                     headers={"Connection": "close"}).status_code
        for n in range(11)
    ]  # fmt: skip


@pytest.mark.parametrize("backend", ["database", "redis"])
def test_eleven_wrong_keys_are_counted_by_every_worker_together(backend, request):
    extra = {"REDIS_URL": request.getfixturevalue("redis_url")} if backend == "redis" else {}
    portal = PortalProcesses(extra_env=extra)
    try:
        portal.setup()
        credentials = portal.create_project()
        portal.start_web()  # two gunicorn worker processes
        assert wrong_keys_until_refused(portal, credentials) == [401] * 10 + [429]
        if backend == "redis":
            import redis

            keys = redis.Redis.from_url(extra["REDIS_URL"]).keys("portal:*throttle:app-key:*")
            assert len(keys) == 1
    finally:
        portal.stop()
