"""manage.py health — for monitoring: exit 0 only when every cluster has live
workers, the database and the recording store answer, and no delivery or
webhook message has waited past its limit (HEALTH_* settings)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from portal import health


class Command(BaseCommand):
    help = (
        "Each cluster's live workers (from their heartbeats) and queue, the oldest due "
        "delivery and waiting webhook message; exit 1 when unhealthy."
    )
    # The system checks query the database; a database that is down must be
    # reported as such (DATABASE=unreachable, exit 1), not as a traceback.
    requires_system_checks: list[str] = []

    def handle(self, *args, **options):
        report = health.report()
        for line in report.lines():
            self.stdout.write(line)
        if not report.healthy:
            raise CommandError("unhealthy: " + "; ".join(report.problems))
