"""The django-q2 schedules the apps create in their migrations, written one
way. A schedule row is what makes retries, sweeps and retention happen, so
each is created with the schema (idempotently, by name) rather than by hand.

Migrations use the historical ``Schedule`` model (``apps.get_model``), so
this keeps working however django-q2's model changes later."""

from __future__ import annotations

from django.db import migrations

MINUTES = "I"  # django_q.models.Schedule.MINUTES
HOURLY = "H"  # django_q.models.Schedule.HOURLY
DJANGO_Q_DEPENDENCY = (
    "django_q",
    "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more",
)


def _defaults(func: str, schedule_type: str, minutes: int | None) -> dict:
    defaults: dict = {"func": func, "schedule_type": schedule_type, "repeats": -1}
    if minutes is not None:
        defaults["minutes"] = minutes
    return defaults


def set_schedule(name: str, func: str, *, schedule_type: str = MINUTES, minutes: int | None = 1):
    """A RunPython function creating (or re-pointing) the schedule ``name``."""

    def create(apps, schema_editor):
        apps.get_model("django_q", "Schedule").objects.update_or_create(
            name=name, defaults=_defaults(func, schedule_type, minutes)
        )

    return create


def remove_schedule(name: str):
    """A RunPython function deleting the schedule ``name``."""

    def delete(apps, schema_editor):
        apps.get_model("django_q", "Schedule").objects.filter(name=name).delete()

    return delete


def create_schedule(
    name: str, func: str, *, schedule_type: str = MINUTES, minutes: int | None = 1
) -> migrations.RunPython:
    """The operation of a migration that adds a schedule (and drops it when
    migrated back)."""
    return migrations.RunPython(
        set_schedule(name, func, schedule_type=schedule_type, minutes=minutes),
        remove_schedule(name),
    )


def move_schedule(
    name: str,
    old_func: str,
    new_func: str,
    *,
    schedule_type: str = MINUTES,
    minutes: int | None = 1,
) -> migrations.RunPython:
    """The operation of a migration whose task moved to another module."""
    return migrations.RunPython(
        set_schedule(name, new_func, schedule_type=schedule_type, minutes=minutes),
        set_schedule(name, old_func, schedule_type=schedule_type, minutes=minutes),
    )
