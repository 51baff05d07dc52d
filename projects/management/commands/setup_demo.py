import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from projects.actions.projects import do_create_project
from projects.models import Project

DEMO_USERNAME = "demo"
DEMO_PROJECT = "Demo project"
DEMO_DESTINATION = "Demo folder"


class Command(BaseCommand):
    help = "Create the demo administrator and demo project once (used by `make run`)."

    def handle(self, *args, **options):
        User = get_user_model()
        password_file = settings.DATA_DIR / "secrets" / "demo_password"
        user = User.objects.filter(username=DEMO_USERNAME).first()
        if user is None or not password_file.exists():
            password = secrets.token_urlsafe(10)
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
            if user is None:
                user = User.objects.create_superuser(DEMO_USERNAME, "demo@example.com", password)
            else:
                user.set_password(password)
                user.save(update_fields=["password"])
        password = password_file.read_text().strip()
        project = Project.objects.filter(name=DEMO_PROJECT, memberships__user=user).first()
        created = False
        if project is None:
            new = do_create_project(DEMO_PROJECT, acting_user=user)
            project, created = new.project, True
            # For `manage.py simulate_session ... --app-key $(cat DATA_DIR/secrets/demo_app_key)`.
            key_file = settings.DATA_DIR / "secrets" / "demo_app_key"
            key_file.write_text(new.app_key + "\n")
            key_file.chmod(0o600)
        self.stdout.write(f"DEMO_USERNAME={DEMO_USERNAME}")
        self.stdout.write(f"DEMO_PASSWORD={password}")
        self.stdout.write(f"DEMO_APP_ID={project.app_id}")
        self.stdout.write(f"DEMO_PROJECT_CREATED={'yes' if created else 'no'}")
        # The webhook first: a session delivered by demo_destination is announced to it.
        self.stdout.write(f"DEMO_WEBHOOK_URL={self.demo_webhook(project, user)}")
        self.stdout.write(f"DEMO_DELIVERED_TO={self.demo_destination(project, user)}")

    def demo_webhook(self, project, user) -> str:
        """Point the demo project's webhook at the portal's own Webhook inbox
        (demo/inbox.py), when `make run` turned it on, so a newcomer sees the
        signed file_transfer without a server of their own. A webhook someone
        set to another URL is left alone."""
        from demo.inbox import enabled, inbox_path, inbox_url
        from webhooks.actions import do_configure_webhook
        from webhooks.models import WebhookEndpoint

        endpoint = WebhookEndpoint.objects.filter(project=project).first()
        if not enabled():
            return endpoint.url if endpoint else "none"
        # An inbox URL of an earlier run may name another PUBLIC_BASE_URL.
        if endpoint is None or (
            endpoint.url.endswith(inbox_path(project)) and endpoint.url != inbox_url(project)
        ):
            do_configure_webhook(project, url=inbox_url(project), acting_user=user)
            return inbox_url(project)
        return endpoint.url

    def demo_destination(self, project, user) -> str:
        """A local folder destination, DATA_DIR/delivered, so a newcomer sees the
        demo session delivered. Local folders are an operator feature: `make
        run` allows this one folder (DELIVERY_LOCAL_ROOTS) for the demo only."""
        from delivery.actions.deliveries import do_deliver_past_sessions
        from delivery.actions.destinations import do_save_destination
        from delivery.destinations import destination_class
        from delivery.forms import destination_settings, kind_form
        from delivery.models import FileType

        folder = settings.DATA_DIR / "delivered"
        existing = project.destinations.filter(name=DEMO_DESTINATION).first()
        if existing is not None:
            return existing.config.get("path", "")
        if destination_class("local").unavailable():
            return "none"
        form = kind_form("local", {"path": str(folder), "root": ""}, web=False)
        if not form.is_valid():  # DELIVERY_LOCAL_ROOTS does not allow DATA_DIR/delivered
            return "none"
        folder.mkdir(parents=True, exist_ok=True)
        public_config, new_secrets = destination_settings(form)
        destination = do_save_destination(
            project, "local", name=DEMO_DESTINATION, file_types=FileType.values, enabled=True,
            public_config=public_config, new_secrets=new_secrets, acting_user=user,
        )  # fmt: skip
        # An earlier `make run` may have recorded the demo session already.
        do_deliver_past_sessions(
            project, since=None, until=None, destination=destination, acting_user=user
        )
        return str(folder)
