"""Every minute, wake deliveries whose retry is due or whose worker died
holding the lease. The schedule row is what makes retries and recovery
happen, so it is created with the schema (idempotently)."""

from django.db import migrations

from portal.schedules import DJANGO_Q_DEPENDENCY, create_schedule


class Migration(migrations.Migration):
    dependencies = [("delivery", "0002_delivery_progress_fields"), DJANGO_Q_DEPENDENCY]

    operations = [create_schedule("delivery-sweep", "delivery.tasks.sweep")]
