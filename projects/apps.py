from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _join_invited_projects(sender, request, user, **kwargs):
    """A person invited on a Members page joins at their next login, and is told."""
    from django.contrib import messages

    from .actions.members import do_accept_invitations
    from .audit import client_ip

    for membership in do_accept_invitations(
        acting_user=user, ip=client_ip(request) if request else None
    ):
        if request is not None and hasattr(request, "_messages"):
            messages.info(
                request,
                f"You were added to the project {membership.project.name} "
                f"as {membership.get_role_display()}.",
            )


class ProjectsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "projects"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from portal import checks  # noqa: F401  (registers the operator-settings checks)
        from portal.heartbeats import create_cache_tables

        post_migrate.connect(create_cache_tables, sender=self)
        user_logged_in.connect(_join_invited_projects, dispatch_uid="projects-join-invited")
