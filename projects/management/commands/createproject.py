from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from projects.actions.projects import do_create_project


class Command(BaseCommand):
    help = "Create a project owned by USER and print its credentials as KEY=value lines."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--owner", required=True, help="username of the owner")

    def handle(self, *args, name, owner, **options):
        User = get_user_model()
        try:
            user = User.objects.get(username=owner)
        except User.DoesNotExist:
            raise CommandError(
                f"No user {owner!r}; create it first (manage.py createsuperuser)."
            ) from None
        created = do_create_project(name, acting_user=user)
        self.stdout.write(f"APP_ID={created.project.app_id}")
        self.stdout.write(f"APP_KEY={created.app_key}")
        self.stdout.write(f"RECORDING_USERNAME={created.recording_username}")
        self.stdout.write(f"RECORDING_PASSWORD={created.recording_password}")
