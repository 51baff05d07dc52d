from django.apps import AppConfig


def _join_invited_projects(sender, request, user, **kwargs):
    """A person invited on a Members page joins at their next login, and is told."""
    from django.contrib import messages

    from .audit import client_ip
    from .services import do_accept_invitations

    for membership in do_accept_invitations(user, ip=client_ip(request) if request else None):
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

        user_logged_in.connect(_join_invited_projects, dispatch_uid="projects-join-invited")
