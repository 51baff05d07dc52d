from django.apps import AppConfig


class DemoConfig(AppConfig):
    """What only `make run`'s demo uses: the built-in webhook inbox."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "demo"
    verbose_name = "Demo"
