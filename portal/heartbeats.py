"""Where django-q2 clusters leave their heartbeats, so that another process
(``manage.py health``, the admin's health page) on another machine can read them.

Each cluster's guard saves its state (``django_q.status.Stat``: workers,
status, timestamp) into the cache named by ``Q_CLUSTER["cache"]`` every half
second. Three things in django-q2 make its default unusable here:

* Django's default cache is per process, so nothing outside the cluster sees it;
  this one is a table in the database every machine already shares.
* Every cluster of a site writes under the same list key (``django_q:<name>:cluster``,
  ``name`` being the site-wide ``Q_CLUSTER["name"]``) and a ``Stat`` does not say
  which cluster (``Q_CLUSTER_NAME``) it belongs to, so the key prefix carries
  the cluster's name: the delivery cluster and the processing cluster stay apart.
* Stats expire after 3 s, made for Redis; a busy SQLite or PostgreSQL can hold a
  write longer than that, and a cluster would blink dead. Here they are kept
  ``KEEP_SECONDS`` and ``portal.health`` judges their age itself.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.db import DatabaseCache

# Long enough for the health page to say "last heard 5 minutes ago" about a
# dead cluster; short enough that `manage.py qinfo` forgets it soon after.
KEEP_SECONDS = 600


class ClusterHeartbeatCache(DatabaseCache):
    """A database cache whose keys are prefixed with a cluster's name: the
    name of the cluster this process runs (django-q2's ``Conf.CLUSTER_NAME``,
    i.e. ``Q_CLUSTER_NAME`` or the default), or the one given to ``for_cluster``."""

    def __init__(self, table: str, params: dict[str, Any], cluster_name: str | None = None):
        if cluster_name is None:
            # Imported here: the cache is built lazily, after settings are ready.
            from django_q.conf import Conf

            cluster_name = Conf.CLUSTER_NAME
        self.cluster_name = cluster_name
        self._given_table, self._given_params = table, params
        base = params.get("KEY_PREFIX") or "qcluster"
        super().__init__(table, {**params, "KEY_PREFIX": f"{base}:{cluster_name}"})

    def for_cluster(self, cluster_name: str) -> ClusterHeartbeatCache:
        """The same table, read as the cluster ``cluster_name`` writes it."""
        return type(self)(self._given_table, self._given_params, cluster_name=cluster_name)

    def get_backend_timeout(self, timeout: float | None = DEFAULT_TIMEOUT) -> float | None:
        # Only short lifetimes are stretched: 0 still means "expire now" and
        # None (django-q2's list of stat keys) still means "keep".
        if timeout is not DEFAULT_TIMEOUT and timeout is not None and 0 < timeout < KEEP_SECONDS:
            timeout = KEEP_SECONDS
        return super().get_backend_timeout(timeout)


def create_cache_tables(using: str = "default", **kwargs: Any) -> None:
    """post_migrate: ``migrate`` alone makes the heartbeat table (Django leaves
    database caches to ``createcachetable``, which nobody remembers to run on a
    new worker machine). Idempotent."""
    from django.core.management import call_command

    call_command("createcachetable", database=using, verbosity=0)
