from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ProjectsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "projects"

    def ready(self) -> None:
        from portal.heartbeats import create_cache_tables

        post_migrate.connect(create_cache_tables, sender=self)
