"""The webhook sweep moved to projects.tasks, with every task of the app."""

from django.db import migrations

from portal.schedules import move_schedule


class Migration(migrations.Migration):
    dependencies = [("projects", "0006_audit_rooms_and_sent_webhooks")]

    operations = [
        move_schedule(
            "webhook-sweep",
            "projects.webhooks.sweep_due_messages",
            "projects.tasks.sweep_due_messages",
        )
    ]
