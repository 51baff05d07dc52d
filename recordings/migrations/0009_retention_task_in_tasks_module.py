"""The retention task moved to recordings.tasks, with every task of the app."""

from django.db import migrations

from portal.schedules import HOURLY, move_schedule


class Migration(migrations.Migration):
    dependencies = [("recordings", "0008_recorder_wait_schedule")]

    operations = [
        move_schedule(
            "recordings-retention",
            "recordings.retention.run_retention",
            "recordings.tasks.run_retention",
            schedule_type=HOURLY,
            minutes=None,
        )
    ]
