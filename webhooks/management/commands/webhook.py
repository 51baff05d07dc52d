"""manage.py webhook configure|test — prints parseable KEY=value lines."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from projects.models import Project
from webhooks import outbox
from webhooks.actions import do_configure_webhook, do_send_test_webhook
from webhooks.forms import WebhookForm, selected_events
from webhooks.models import WebhookEndpoint


class Command(BaseCommand):
    help = "Configure a project's webhook or send it a test event."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        configure = sub.add_parser(
            "configure",
            help="Set the URL (and Basic credentials); prints WEBHOOK_URL and, "
            "when generated or rotated, WEBHOOK_SECRET.",
        )
        configure.add_argument("app_id")
        configure.add_argument("--url", help="http(s) URL; required the first time")
        configure.add_argument("--basic-user", help="HTTP Basic username ('' removes Basic auth)")
        configure.add_argument(
            "--basic-password-file",
            help="file holding the Basic password ('-' reads stdin); never give it on the command line",
        )
        state = configure.add_mutually_exclusive_group()
        state.add_argument("--enable", dest="enabled", action="store_true", default=None)
        state.add_argument("--disable", dest="enabled", action="store_false")
        configure.add_argument("--rotate-secret", action="store_true")
        configure.add_argument(
            "--events",
            help="comma-separated events to send (default: keep; all on a new webhook): "
            + ",".join(outbox.SELECTABLE_EVENT_TYPES),
        )
        configure.add_argument(
            "--legacy-event-names",
            action=argparse.BooleanOptionalAction,
            default=None,
            help='send "file-transfer" instead of "file_transfer" (EnableX\'s older docs)',
        )
        test = sub.add_parser("test", help="Send a test event now; prints STATUS=<http code>.")
        test.add_argument("app_id")

    def handle(self, *args, action, app_id, **options):
        try:
            project = Project.objects.get(app_id=app_id)
        except Project.DoesNotExist:
            raise CommandError(f"No project with APP_ID {app_id!r}.") from None
        if action == "configure":
            self.configure(project, **options)
        else:
            self.test(project)

    def configure(
        self,
        project,
        *,
        url,
        basic_user,
        basic_password_file,
        enabled,
        rotate_secret,
        events,
        legacy_event_names,
        **_,
    ):
        endpoint = WebhookEndpoint.objects.filter(project=project).first()
        if endpoint is None and not url:
            raise CommandError("Give --url: the project has no webhook yet.")
        password = read_password(basic_password_file) if basic_password_file else ""
        data = {
            "url": url or endpoint.url,
            "basic_username": endpoint.basic_username if endpoint else "",
            "basic_password": password,
            "events": (
                [event.strip() for event in events.split(",") if event.strip()]
                if events is not None
                else selected_events(endpoint)
            ),
        }
        if legacy_event_names is None:
            legacy_event_names = bool(endpoint and endpoint.legacy_event_names)
        if legacy_event_names:
            data["legacy_event_names"] = "on"
        if enabled is None:
            enabled = endpoint.enabled if endpoint else True
        if enabled:
            data["enabled"] = "on"
        if basic_user is not None:
            data["basic_username"] = basic_user
            if basic_user == "" and endpoint and endpoint.basic_password:
                data["clear_basic_password"] = "on"
        form = WebhookForm(data, endpoint=endpoint)
        if not form.is_valid():
            problems = "; ".join(
                f"{name}: {' '.join(errors)}" for name, errors in form.errors.items()
            )
            raise CommandError(f"Webhook not saved: {problems}")
        change = do_configure_webhook(
            project,
            url=form.cleaned_data["url"],
            enabled=form.cleaned_data["enabled"],
            basic_username=form.cleaned_data["basic_username"],
            basic_password=form.password_change(),
            rotate_secret=rotate_secret,
            events=form.cleaned_data["events"],
            legacy_event_names=form.cleaned_data["legacy_event_names"],
            acting_user=None,  # the operator at the shell, not a portal user
        )
        self.stdout.write(f"WEBHOOK_URL={change.endpoint.url}")
        self.stdout.write(f"WEBHOOK_ENABLED={'yes' if change.endpoint.enabled else 'no'}")
        self.stdout.write(f"WEBHOOK_EVENTS={','.join(selected_events(change.endpoint))}")
        legacy = "yes" if change.endpoint.legacy_event_names else "no"
        self.stdout.write(f"WEBHOOK_LEGACY_EVENT_NAMES={legacy}")
        if change.new_secret:
            self.stdout.write(f"WEBHOOK_SECRET={change.new_secret}")

    def test(self, project):
        logged = do_send_test_webhook(project, acting_user=None)
        if logged is None:
            raise CommandError("The project has no webhook; run `webhook configure` first.")
        self.stdout.write(f"WEBHOOK_ID={logged.message.msg_id}")
        self.stdout.write(f"STATUS={logged.status_code or 0}")
        self.stdout.write(f"DURATION_MS={logged.duration_ms}")
        if not logged.ok:
            raise CommandError(f"Test event not accepted: {logged.error}")


def read_password(source: str) -> str:
    if source == "-":
        return sys.stdin.readline().rstrip("\r\n")
    try:
        return Path(source).read_text().rstrip("\r\n")
    except OSError as exc:
        raise CommandError(
            f"Cannot read the Basic password file {source}: {exc.strerror}"
        ) from None
