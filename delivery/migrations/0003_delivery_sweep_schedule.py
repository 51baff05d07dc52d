"""Every minute, wake deliveries whose retry is due or whose worker died
holding the lease. The schedule row is what makes retries and recovery
happen, so it is created with the schema (idempotently)."""

from django.db import migrations

from portal.schedules import DJANGO_Q_DEPENDENCY, remove_schedule, set_schedule

create_schedule = set_schedule("delivery-sweep", "delivery.tasks.sweep")
delete_schedule = remove_schedule("delivery-sweep")


class Migration(migrations.Migration):
    dependencies = [("delivery", "0002_delivery_progress_fields"), DJANGO_Q_DEPENDENCY]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
