"""The one place views decide who may see and do what in a project."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404

from .models import Membership, Project, Role

ROLE_NEEDED_MESSAGE = "You need the {role} role (or higher) in this project to do that."


def get_project_for(user, app_id: str, role: str = Role.VIEWER) -> Project:
    """Return the project ``app_id`` if ``user`` is a member with at least
    ``role``. Unknown projects and projects the user is not a member of are
    both 404 (outsiders learn nothing); a member without the role gets 403.
    The member's role is available as ``project.membership``."""
    if not user.is_authenticated:
        raise Http404("No such project")
    membership = (
        Membership.objects.select_related("project")
        .filter(project__app_id=app_id, user=user)
        .first()
    )
    if membership is None:
        raise Http404("No such project")
    if not membership.has_role(role):
        raise PermissionDenied(ROLE_NEEDED_MESSAGE.format(role=Role(role).label.lower()))
    project = membership.project
    project.membership = membership  # type: ignore[attr-defined]
    return project


def projects_of(user):
    return Project.objects.filter(memberships__user=user).order_by("name", "id")
