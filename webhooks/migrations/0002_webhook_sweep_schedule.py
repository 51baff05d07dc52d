"""The webhook sweep moved to webhooks.tasks, with the webhooks app. Its
schedule row (created by projects 0002, moved by projects 0007) is
re-pointed; migrating back points it at projects.tasks again."""

from django.db import migrations

from portal.schedules import DJANGO_Q_DEPENDENCY, move_schedule


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0001_initial"),
        ("projects", "0007_webhook_tasks_in_tasks_module"),
        DJANGO_Q_DEPENDENCY,
    ]

    operations = [
        move_schedule(
            "webhook-sweep",
            "projects.tasks.sweep_due_messages",
            "webhooks.tasks.sweep_due_messages",
        )
    ]
