"""Every hour, remove recording files older than RECORDING_RETENTION_HOURS
(recordings.retention). Created with the schema so no one has to remember it."""

from django.db import migrations

SCHEDULE_NAME = "recordings-retention"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "func": "recordings.retention.run_retention",
            "schedule_type": "H",  # Schedule.HOURLY
            "repeats": -1,
        },
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("recordings", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
