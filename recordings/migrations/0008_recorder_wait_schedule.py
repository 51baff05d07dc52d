"""Every minute, fail recorder requests that waited too long
(recordings.tasks.expire_waiting_recorders), and create the pool row that
every hand-out of a recorder slot locks."""

from django.db import migrations

SCHEDULE_NAME = "recordings-expire-waiting-recorders"


def create(apps, schema_editor):
    apps.get_model("recordings", "RecorderPool").objects.get_or_create(pk=1)
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "func": "recordings.tasks.expire_waiting_recorders",
            "schedule_type": "I",  # Schedule.MINUTES
            "minutes": 1,
            "repeats": -1,
        },
    )


def delete(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("recordings", "0007_recorder_slots_and_queue"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create, delete)]
