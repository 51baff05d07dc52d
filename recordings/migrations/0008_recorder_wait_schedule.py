"""Every minute, fail recorder requests that waited too long
(recordings.tasks.expire_waiting_recorders), and create the pool row that
every hand-out of a recorder slot locks."""

from django.db import migrations

from portal.schedules import DJANGO_Q_DEPENDENCY, create_schedule


def create_pool(apps, schema_editor):
    apps.get_model("recordings", "RecorderPool").objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [("recordings", "0007_recorder_slots_and_queue"), DJANGO_Q_DEPENDENCY]

    operations = [
        migrations.RunPython(create_pool, migrations.RunPython.noop),
        create_schedule(
            "recordings-expire-waiting-recorders", "recordings.tasks.expire_waiting_recorders"
        ),
    ]
