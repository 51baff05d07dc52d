"""Health figures of an installation, for ``/healthz``, ``manage.py health`` and
the admin's health page.

Web health is cheap and says only yes or no: the database answers a trivial
query and the recording store answers a listing of a folder no recording uses.
Worker health reads each django-q2 cluster's heartbeats (portal/heartbeats.py)
and the backlogs the database holds: task queue per cluster, due deliveries,
waiting webhook messages. Every figure is one aggregate query on an index.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.cache import caches
from django.db import DatabaseError, connection, transaction
from django.db.models import Case, Count, F, Min, Q, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import BadSignature, SignedPackage

from delivery.leases import due as delivery_due
from delivery.models import Delivery
from recordings import store
from webhooks.models import WebhookMessage

from .heartbeats import ClusterHeartbeatCache

logger = logging.getLogger(__name__)

# --- web: database and recording store ------------------------------------------


def database_reachable() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        logger.warning("health: database unreachable (%s)", type(exc).__name__)
        return False
    return True


def store_reachable() -> bool:
    try:
        store.check()
    except Exception as exc:  # any backend's error (OSError, botocore's, ...)
        # The type only: a backend's message may quote a URL or account.
        logger.warning("health: recording store unreachable (%s)", type(exc).__name__)
        return False
    return True


def web_checks() -> dict[str, bool]:
    return {"database": database_reachable(), "store": store_reachable()}


# --- clusters -------------------------------------------------------------------


def cluster_names() -> list[str]:
    """The default cluster's name and every ALT_CLUSTERS name, as configured
    in this process's settings."""
    conf = settings.Q_CLUSTER
    names = [conf.get("cluster_name") or conf.get("name") or "default"]
    names += [name for name in conf.get("ALT_CLUSTERS") or {} if name not in names]
    return names


def cluster_conf(name: str) -> dict:
    """The configuration django-q2 builds for cluster ``name`` (its Conf)."""
    conf = dict(settings.Q_CLUSTER)
    alt = (conf.pop("ALT_CLUSTERS", None) or {}).get(name)
    if isinstance(alt, dict):
        conf.update({k: v for k, v in alt.items() if k not in ("name", "cluster_name")})
    return conf


@dataclass
class ClusterInstance:
    """One running ``qcluster`` process, as its last heartbeat describes it."""

    host: str
    pid: int
    status: str
    workers: int
    heartbeat_age: float
    uptime: float | None
    alive: bool


@dataclass
class ClusterHealth:
    name: str
    instances: list[ClusterInstance]
    queued: int | None  # tasks waiting in the broker; None if it cannot tell
    in_progress: int | None
    oldest_queued_age: float | None
    heartbeats_readable: bool = True

    @property
    def alive(self) -> list[ClusterInstance]:
        return [instance for instance in self.instances if instance.alive]

    @property
    def workers(self) -> int:
        return sum(instance.workers for instance in self.alive)

    @property
    def heartbeat_age(self) -> float | None:
        return min((i.heartbeat_age for i in self.instances), default=None)


class HeartbeatsUnreadable(Exception):
    pass


def heartbeats(name: str, now: datetime) -> list[ClusterInstance]:
    cache = caches[cluster_conf(name).get("cache", "default")]
    if isinstance(cache, ClusterHeartbeatCache):
        cache = cache.for_cluster(name)
    try:
        # Inside a transaction, a savepoint: PostgreSQL refuses every later
        # query once one failed. Outside, none: on SQLite (IMMEDIATE) a
        # transaction would queue this read behind every writer.
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            packs = cache.get_many(cache.get(Conf.Q_STAT) or []).values()
    except DatabaseError as exc:
        # No table: an installation upgraded without `migrate`, which makes it.
        raise HeartbeatsUnreadable(name) from exc
    max_age = settings.HEALTH_HEARTBEAT_MAX_AGE_SECONDS
    stopped = {str(Conf.STOPPED), str(Conf.STOPPING)}
    instances = []
    for pack in packs:
        try:
            stat = SignedPackage.loads(pack)
        except BadSignature:
            continue  # another installation's, signed with another key
        age = max(0.0, (now - stat.timestamp).total_seconds())
        instances.append(
            ClusterInstance(
                host=stat.host,
                pid=stat.pid,
                status=str(stat.status),
                workers=len(stat.workers),
                heartbeat_age=age,
                uptime=(now - stat.tob).total_seconds() if stat.tob else None,
                alive=age <= max_age and str(stat.status) not in stopped,
            )
        )
    return sorted(instances, key=lambda i: (i.host, i.pid))


def queue_depth(name: str, now: datetime) -> tuple[int | None, int | None, float | None]:
    """(waiting, taken by a worker, age of the oldest waiting) for the cluster's queue."""
    conf = cluster_conf(name)
    if conf.get("orm"):
        # An ORM task's ``lock`` is its enqueue time until a worker takes it,
        # then the time it may be taken again (django_q.brokers.orm).
        waiting = Q(lock__lte=now)
        figures = (
            OrmQ.objects.using(conf["orm"])
            .filter(key=name)
            .aggregate(
                waiting=Count("id", filter=waiting),
                taken=Count("id", filter=~waiting),
                oldest=Min("lock", filter=waiting),
            )
        )
        oldest = figures["oldest"]
        age = (now - oldest).total_seconds() if oldest else None
        return figures["waiting"], figures["taken"], age
    broker = get_broker(list_key=name)
    return broker.queue_size(), broker.lock_size(), None


def cluster_health(name: str, now: datetime) -> ClusterHealth:
    queued, in_progress, oldest = queue_depth(name, now)
    try:
        instances, readable = heartbeats(name, now), True
    except HeartbeatsUnreadable:
        instances, readable = [], False
    return ClusterHealth(name, instances, queued, in_progress, oldest, readable)


# --- backlogs in the database ---------------------------------------------------


@dataclass
class Backlog:
    count: int
    oldest_age: float | None


def _backlog(figures: dict, now: datetime) -> Backlog:
    oldest = figures["oldest"]
    return Backlog(figures["count"], max(0.0, (now - oldest).total_seconds()) if oldest else None)


def due_deliveries(now: datetime) -> Backlog:
    """Deliveries a worker may take now, aged from when they became due:
    their next attempt, or the end of the lease of a worker that died."""
    became_due = Case(
        When(state=Delivery.State.RUNNING, then=Coalesce("lease_expires_at", "created_at")),
        default=Coalesce("next_attempt_at", "created_at"),
    )
    figures = Delivery.objects.filter(delivery_due(now)).aggregate(
        count=Count("id"), oldest=Min(became_due)
    )
    return _backlog(figures, now)


def waiting_webhooks(now: datetime) -> Backlog:
    """Messages due to be sent (a sending one whose lease ran out included)."""
    State = WebhookMessage.State
    figures = WebhookMessage.objects.filter(
        Q(next_attempt_at__lte=now) | Q(next_attempt_at__isnull=True),
        state__in=[State.PENDING, State.RETRY, State.SENDING],
    ).aggregate(count=Count("id"), oldest=Min(Coalesce(F("next_attempt_at"), F("created_at"))))
    return _backlog(figures, now)


# --- the report -----------------------------------------------------------------


@dataclass
class Report:
    web: dict[str, bool]
    clusters: list[ClusterHealth]
    deliveries: Backlog | None  # None: the database did not answer
    webhooks: Backlog | None
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """``KEY=value`` lines, as the other management commands print."""
        lines = [
            f"CLUSTER={c.name} ALIVE={len(c.alive)} WORKERS={c.workers} "
            f"HEARTBEAT_AGE={_seconds(c.heartbeat_age)} QUEUED={_count(c.queued)} "
            f"IN_PROGRESS={_count(c.in_progress)} OLDEST_QUEUED_AGE={_seconds(c.oldest_queued_age)}"
            for c in self.clusters
        ]
        for count_key, age_key, backlog in (
            ("DELIVERIES_DUE", "OLDEST_DUE_DELIVERY_AGE", self.deliveries),
            ("WEBHOOKS_WAITING", "OLDEST_WAITING_WEBHOOK_AGE", self.webhooks),
        ):
            count, age = (backlog.count, backlog.oldest_age) if backlog else (None, None)
            lines.append(f"{count_key}={_count(count)} {age_key}={_seconds(age)}")
        lines.append(
            " ".join(f"{k.upper()}={'ok' if ok else 'unreachable'}" for k, ok in self.web.items())
        )
        lines.append(f"STATUS={'ok' if self.healthy else 'unhealthy'}")
        return lines


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def report() -> Report:
    now = timezone.now()
    web = web_checks()
    if not web["database"]:
        # Heartbeats, queues and backlogs all live in the database.
        return Report(web, [], None, None, problems=["the database is unreachable"])
    result = Report(
        web=web,
        clusters=[cluster_health(name, now) for name in cluster_names()],
        deliveries=due_deliveries(now),
        webhooks=waiting_webhooks(now),
    )
    problems = result.problems
    problems += [f"the {what} is unreachable" for what, ok in web.items() if not ok]
    max_age = settings.HEALTH_HEARTBEAT_MAX_AGE_SECONDS
    for cluster in result.clusters:
        if not cluster.heartbeats_readable:
            problems.append(
                f"cluster {cluster.name}: its heartbeats cannot be read "
                "(run `manage.py migrate`, which creates their table)"
            )
        elif not cluster.alive:
            last = cluster.heartbeat_age
            heard = "never heard from" if last is None else f"last heartbeat {last:.0f} s ago"
            problems.append(
                f"cluster {cluster.name}: no live workers "
                f"({heard}; alive means a heartbeat within {max_age} s)"
            )
    for what, backlog, limit in (
        ("delivery", result.deliveries, settings.HEALTH_DELIVERY_MAX_WAIT_SECONDS),
        ("webhook message", result.webhooks, settings.HEALTH_WEBHOOK_MAX_WAIT_SECONDS),
    ):
        if backlog and backlog.oldest_age is not None and backlog.oldest_age > limit:
            problems.append(
                f"{backlog.count} {what}(s) due; the oldest has waited "
                f"{backlog.oldest_age:.0f} s (limit {limit} s)"
            )
    return result
