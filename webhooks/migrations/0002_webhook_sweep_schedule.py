"""The webhook sweep moved to webhooks.tasks, with the webhooks app. Its
schedule row (created by projects 0002, moved by projects 0007) is
re-pointed; migrating back points it at projects.tasks again.

Sends already queued under ``projects.tasks.send_message_task`` are not
rewritten (django-q2 stores them signed): each fails to import once, and
its message, still due in the outbox, is sent by the sweep within a minute."""

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
