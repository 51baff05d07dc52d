"""Every 10 minutes, queue processing again for sessions whose worker died
(recordings.tasks.requeue_stalled_processing)."""

from django.db import migrations

SCHEDULE_NAME = "recordings-requeue-stalled-processing"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "func": "recordings.tasks.requeue_stalled_processing",
            "schedule_type": "I",  # Schedule.MINUTES
            "minutes": 10,
            "repeats": -1,
        },
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("recordings", "0002_retention_schedule")]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
