"""manage.py delivery configure|test|status|redeliver|connect-url — for scripts.

Every command prints parseable ``KEY=value`` lines (values with spaces are
shell-quoted, so ``shlex.split`` reads a line back) and exits non-zero on
failure with the reason on stderr."""

from __future__ import annotations

import shlex
from datetime import date
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from delivery import scheduling
from delivery.actions import deliveries as delivery_actions
from delivery.actions import destinations as destination_actions
from delivery.connection_test import check_connection
from delivery.destinations import REGISTRY, describe_destination, destination_class, kinds_where
from delivery.destinations.base import AccountConnectError, TransferError, UntrustedHostKey
from delivery.forms import DEFAULT_TYPES, DestinationCommonForm, destination_settings, kind_form
from delivery.models import Delivery, DeliveryDestination, FileType
from projects.models import Project
from recordings.models import Session

STATUS_LIMIT = 50
FALSE_WORDS = {"0", "no", "off", "false", ""}


def kv(**pairs) -> str:
    return " ".join(f"{key.upper()}={shlex.quote(str(value))}" for key, value in pairs.items())


class Command(BaseCommand):
    help = "Configure, test and watch a project's recording delivery."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        configure = sub.add_parser("configure", help="Create or update a destination.")
        configure.add_argument("app_id")
        configure.add_argument("--kind", required=True, choices=list(REGISTRY))
        configure.add_argument("--name", help="destination name (default: the kind)")
        configure.add_argument(
            "--types", help=f"comma-separated file types: {','.join(FileType.values)}"
        )
        configure.add_argument(
            "--set", action="append", default=[], metavar="KEY=VALUE",
            help="a setting of the kind; KEY=@path reads the value from a file",
        )  # fmt: skip
        state = configure.add_mutually_exclusive_group()
        state.add_argument("--enable", dest="enabled", action="store_true", default=None)
        state.add_argument("--disable", dest="enabled", action="store_false")
        configure.add_argument(
            "--no-manifest", action="store_true", help="do not write manifest.json"
        )

        test = sub.add_parser("test", help="Write and remove a probe file; exit 0 only then.")
        test.add_argument("app_id")
        test.add_argument("--name")
        test.add_argument(
            "--trust-host-key", action="store_true",
            help="pin the host key or certificate the server presents, then test again",
        )  # fmt: skip

        status = sub.add_parser("status", help="Destinations and recent deliveries.")
        status.add_argument("app_id")

        redeliver = sub.add_parser("redeliver", help="Queue deliveries again.")
        redeliver.add_argument("app_id")
        which = redeliver.add_mutually_exclusive_group(required=True)
        which.add_argument("--conf-num")
        which.add_argument("--failed", action="store_true")
        which.add_argument("--since", type=_date, metavar="YYYY-MM-DD")
        redeliver.add_argument("--name", help="only this destination")

        connecting = "/".join(kinds_where("account_service"))
        connect = sub.add_parser(
            "connect-url", help=f"Consent URL connecting the account of a {connecting} destination."
        )
        connect.add_argument("app_id")
        connect.add_argument("--name")

    def handle(self, *args, action, app_id, **options):
        try:
            project = Project.objects.get(app_id=app_id)
        except Project.DoesNotExist:
            raise CommandError(f"No project with APP_ID {app_id!r}.") from None
        getattr(self, action.replace("-", "_"))(project, **options)

    def out(self, **pairs) -> None:
        self.stdout.write(kv(**pairs))

    # -- configure -------------------------------------------------------------------------------
    def configure(self, project, *, kind, name, types, set, enabled, no_manifest, **_):
        if reason := destination_class(kind).unavailable():
            raise CommandError(f"Destination not saved: {reason}")
        name = name or kind
        destination = DeliveryDestination.objects.filter(project=project, name=name).first()
        if destination is not None and destination.kind != kind:
            raise CommandError(
                f"Destination {name!r} is of kind {destination.kind}, not {kind}: "
                "give another --name."
            )
        form = kind_form(kind, destination=destination, web=False)
        fields = form.fields
        data = {
            key: value
            for key, value in (destination.config if destination else {}).items()
            if key in fields and not fields[key].disabled
        }
        if destination is None:
            data.update({key: f.initial for key, f in fields.items() if f.initial is not None})
        for item in set:
            key, value = _setting(item)
            if key not in fields:
                raise CommandError(
                    f"Unknown setting {key!r} for kind {kind}; settings: {', '.join(fields)}"
                )
            data[key] = value
        for key, fld in fields.items():
            if fld.widget.__class__.__name__ == "CheckboxInput" and isinstance(data.get(key), str):
                data[key] = data[key].strip().lower() not in FALSE_WORDS
            if data.get(key) is None:
                data.pop(key, None)
        form = kind_form(kind, data, destination=destination, web=False)
        common = DestinationCommonForm(
            _common_data(destination, name, types, enabled, no_manifest),
            project=project,
            instance=destination,
        )
        if not (common.is_valid() & form.is_valid()):
            problems = "; ".join(
                f"{field if field != '__all__' else 'settings'}: {' '.join(errors)}"
                for errors_of in (common.errors, form.errors)
                for field, errors in errors_of.items()
            )
            raise CommandError(f"Destination not saved: {problems}")
        data = common.cleaned_data
        public_config, new_secrets = destination_settings(form)
        destination = destination_actions.do_save_destination(
            project, kind, name=data["name"], file_types=data["file_types"],
            enabled=data["enabled"], public_config=public_config, new_secrets=new_secrets,
            write_manifest=data["write_manifest"], destination=destination,
            acting_user=None,  # the operator at the shell, not a portal user
        )  # fmt: skip
        self.out(destination_id=destination.pk)
        self.out(name=destination.name)
        self.out(kind=destination.kind)
        self.out(types=",".join(destination.file_types))
        self.out(enabled="yes" if destination.enabled else "no")
        self.out(description=describe_destination(destination))

    # -- test ------------------------------------------------------------------------------------
    def test(self, project, *, name, trust_host_key, **_):
        destinations = _chosen(project, name)
        failed = []
        for destination in destinations:
            if not self._test_one(destination, trust_host_key):
                failed.append(destination.name)
        if failed:
            raise CommandError(f"Test failed for: {', '.join(failed)}")

    def _test_one(self, destination, trust: bool) -> bool:
        self.out(destination=destination.name, kind=destination.kind)
        try:
            message = check_connection(destination)
        except UntrustedHostKey as exc:
            key = (
                "TLS_CERT_FINGERPRINT" if exc.what == "TLS certificate" else "HOST_KEY_FINGERPRINT"
            )
            self.stdout.write(f"{key}={exc.fingerprint}")
            if exc.pinned:
                self.out(pinned_fingerprint=exc.pinned)
            if not trust:
                self.out(result="untrusted", error=exc.message)
                self.stderr.write(
                    f"{destination.name}: {exc.message} Run again with --trust-host-key to pin it."
                )
                return False
            destination_actions.do_trust_fingerprint(destination, exc.fingerprint, acting_user=None)
            self.out(trusted_fingerprint=exc.fingerprint)
            destination.refresh_from_db()
            return self._test_one(destination, trust=False)
        except TransferError as exc:
            if exc.needs_reconnect:
                destination_actions.do_record_account_error(destination, exc.message)
            self.out(result="failed", error=exc.message)
            self.stderr.write(f"{destination.name}: {exc.message}")
            return False
        destination_actions.do_record_account_error(destination, "")
        self.out(result="ok", message=message)
        return True

    # -- status ----------------------------------------------------------------------------------
    def status(self, project, **_):
        for d in project.destinations.all():
            self.out(
                destination=d.name, id=d.pk, kind=d.kind, enabled="yes" if d.enabled else "no",
                types=",".join(d.file_types), description=describe_destination(d),
            )  # fmt: skip
        rows = (
            Delivery.objects.filter(destination__project=project)
            .select_related("destination", "session")
            .order_by("-created_at", "-id")[:STATUS_LIMIT]
        )
        for d in rows:
            pairs = {
                "delivery": d.pk,
                "state": d.state,
                "conf_num": d.session.conf_num,
                "destination": d.destination.name,
                "bytes": f"{d.bytes_sent}/{d.bytes_total}",
                "attempts": d.attempts,
            }
            if d.state == Delivery.State.RETRY_WAIT and d.next_attempt_at:
                pairs["next_attempt_at"] = d.next_attempt_at.isoformat(timespec="seconds")
            if d.last_error:
                pairs["last_error"] = d.last_error
            self.out(**pairs)

    # -- redeliver -------------------------------------------------------------------------------
    def redeliver(self, project, *, conf_num, failed, since, name, **_):
        destination = _chosen(project, name)[0] if name else None
        if failed:
            self.out(requeued=delivery_actions.do_retry_failed(project, acting_user=None))
            return
        if since:
            # Sessions with no delivery yet (e.g. a destination added later)
            # get one; sessions already delivered are sent again.
            try:
                delivery_actions.do_deliver_past_sessions(
                    project, since=since, until=timezone.now().date(), destination=destination,
                    acting_user=None,
                )
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            rows = Delivery.objects.filter(
                session__project=project, session__started_at__date__gte=since
            )
        else:
            session = Session.objects.filter(project=project, conf_num=conf_num).first()
            if session is None:
                raise CommandError(f"No session with conf_num {conf_num!r} in this project.")
            scheduling.schedule_deliveries_for_session(session.pk)
            rows = Delivery.objects.filter(session=session)
        if destination is not None:
            rows = rows.filter(destination=destination)
        count = 0
        for delivery in rows.select_related("session", "destination"):
            delivery_actions.do_redeliver_delivery(delivery, acting_user=None)
            count += 1
        self.out(requeued=count)

    # -- connect-url -----------------------------------------------------------------------------
    def connect_url(self, project, *, name, **_):
        kinds = kinds_where("account_service")
        rows = project.destinations.filter(kind__in=kinds)
        if name:
            rows = rows.filter(name=name)
        destinations = list(rows)
        if len(destinations) != 1:
            services = " or ".join(destination_class(kind).account_service for kind in kinds)
            raise CommandError(
                f"Give --name of a {'/'.join(kinds)} destination."
                if destinations
                else f"No {services} destination: run `delivery configure APP_ID --kind "
                f"{kinds[0]}` first."
            )
        destination = destinations[0]
        try:
            lines = destination_class(destination.kind).start_headless_connect(
                destination, acting_user=None
            )
        except AccountConnectError as exc:
            raise CommandError(exc.message) from None
        for key, value in lines.items():
            self.stdout.write(f"{key}={value}")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        from argparse import ArgumentTypeError

        raise ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None


def _setting(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise CommandError(f"--set wants KEY=VALUE, got {item.split('=')[0]!r}")
    if value.startswith("@"):
        path = Path(value[1:]).expanduser()
        try:
            value = path.read_text()
        except OSError as exc:
            raise CommandError(f"Cannot read {key} from {path}: {exc.strerror}") from None
        if key not in ("private_key",):
            value = value.rstrip("\r\n")
    return key, value


def _common_data(destination, name, types, enabled, no_manifest) -> dict:
    if types is not None:
        file_types = [t.strip() for t in types.split(",") if t.strip()]
    elif destination is not None:
        file_types = list(destination.file_types)
    else:
        file_types = [str(t) for t in DEFAULT_TYPES]
    if enabled is None:
        enabled = destination.enabled if destination is not None else True
    manifest = (
        not no_manifest if (no_manifest or destination is None) else destination.write_manifest
    )
    data: dict = {"name": name, "file_types": file_types}
    if enabled:
        data["enabled"] = "on"
    if manifest:
        data["write_manifest"] = "on"
    return data


def _chosen(project, name: str | None) -> list[DeliveryDestination]:
    rows = list(project.destinations.all())
    if name:
        rows = [d for d in rows if d.name == name]
        if not rows:
            raise CommandError(f"No destination named {name!r} in this project.")
    if not rows:
        raise CommandError("The project has no destination: run `delivery configure` first.")
    return rows
