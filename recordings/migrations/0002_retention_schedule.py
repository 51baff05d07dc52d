"""Every hour, remove recording files older than RECORDING_RETENTION_HOURS
(recordings.retention). Created with the schema so no one has to remember it."""

from django.db import migrations

from portal.schedules import DJANGO_Q_DEPENDENCY, HOURLY, create_schedule


class Migration(migrations.Migration):
    dependencies = [("recordings", "0001_initial"), DJANGO_Q_DEPENDENCY]

    operations = [
        create_schedule(
            "recordings-retention",
            "recordings.retention.run_retention",
            schedule_type=HOURLY,
            minutes=None,
        )
    ]
