"""Every minute, send webhook messages whose (re)try is due. The schedule row
is what makes retries happen, so it is created with the schema."""

from django.db import migrations

from portal.schedules import DJANGO_Q_DEPENDENCY, create_schedule


class Migration(migrations.Migration):
    dependencies = [("projects", "0001_initial"), DJANGO_Q_DEPENDENCY]

    operations = [create_schedule("webhook-sweep", "projects.webhooks.sweep_due_messages")]
