"""The webhook models moved to the ``webhooks`` app (its migration 0001).

State only: their tables (``projects_webhookendpoint``,
``projects_webhookmessage``, ``projects_webhookattempt``) and rows stay where
they are; ``webhooks.models`` keeps those table names."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("projects", "0007_webhook_tasks_in_tasks_module")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="WebhookAttempt"),
                migrations.DeleteModel(name="WebhookMessage"),
                migrations.DeleteModel(name="WebhookEndpoint"),
            ],
            database_operations=[],
        )
    ]
