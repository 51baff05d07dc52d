"""The webhook models, moved here from ``projects`` (its migration 0008).

State only: the tables already exist under their old names (``db_table``),
with their rows, constraints and indexes (the index names below are the ones
the tables have). The content types follow the models, so permissions and
admin history on them stay attached."""

import django.db.models.deletion
from django.db import migrations, models

import portal.fields

MODELS = ("webhookendpoint", "webhookmessage", "webhookattempt")


def move_content_types(old_label: str, new_label: str):
    def move(apps, schema_editor):
        content_types = apps.get_model("contenttypes", "ContentType").objects
        for model in MODELS:
            if content_types.filter(app_label=new_label, model=model).exists():
                continue  # already there (created by a post_migrate of the new app)
            content_types.filter(app_label=old_label, model=model).update(app_label=new_label)

    return move


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("projects", "0008_webhooks_moved_to_their_own_app"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="WebhookEndpoint",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("url", models.URLField(max_length=500)),
                        ("enabled", models.BooleanField(default=True)),
                        ("secret", portal.fields.EncryptedTextField()),
                        ("basic_username", models.CharField(blank=True, default="", max_length=150)),
                        ("basic_password", portal.fields.EncryptedTextField(blank=True, default="")),
                        ("events", models.JSONField(blank=True, default=list)),
                        ("legacy_event_names", models.BooleanField(default=False)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        ("project", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name="webhook", to="projects.project")),
                    ],
                    options={
                        "db_table": "projects_webhookendpoint",
                    },
                ),
                migrations.CreateModel(
                    name="WebhookMessage",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("msg_id", models.CharField(default="", editable=False, max_length=64, unique=True)),
                        ("event_type", models.CharField(max_length=40)),
                        ("payload", models.JSONField()),
                        ("state", models.CharField(choices=[("pending", "Pending"), ("sending", "Sending"), ("retry", "Waiting to retry"), ("delivered", "Delivered"), ("failed", "Failed")], default="pending", max_length=10)),
                        ("attempts", models.PositiveIntegerField(default=0)),
                        ("next_attempt_at", models.DateTimeField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("dedupe_key", models.CharField(blank=True, max_length=120, null=True, unique=True)),
                        ("project", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="webhook_messages", to="projects.project")),
                    ],
                    options={
                        "db_table": "projects_webhookmessage",
                        "ordering": ["-created_at", "-id"],
                        "indexes": [
                            models.Index(fields=["project", "-created_at"], name="projects_we_project_99dfc0_idx"),
                            models.Index(fields=["state", "next_attempt_at"], name="projects_we_state_e96b61_idx"),
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="WebhookAttempt",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("at", models.DateTimeField(auto_now_add=True)),
                        ("status_code", models.PositiveIntegerField(blank=True, null=True)),
                        ("duration_ms", models.PositiveIntegerField(default=0)),
                        ("error", models.CharField(blank=True, default="", max_length=500)),
                        ("manual", models.BooleanField(default=False)),
                        ("message", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="attempt_log", to="webhooks.webhookmessage")),
                    ],
                    options={
                        "db_table": "projects_webhookattempt",
                        "ordering": ["-at", "-id"],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(
            move_content_types("projects", "webhooks"), move_content_types("webhooks", "projects")
        ),
    ]
