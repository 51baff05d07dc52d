"""Every 10 minutes, queue processing again for sessions whose worker died
(recordings.tasks.requeue_stalled_processing)."""

from django.db import migrations

from portal.schedules import create_schedule


class Migration(migrations.Migration):
    dependencies = [("recordings", "0002_retention_schedule")]

    operations = [
        create_schedule(
            "recordings-requeue-stalled-processing",
            "recordings.tasks.requeue_stalled_processing",
            minutes=10,
        )
    ]
