"""Authentication of the JSON APIs: HTTP Basic with the project's APP_ID:APP_KEY.

Kept apart from ``portal.api`` because DRF imports these classes while
``rest_framework.views`` is still loading."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from projects.audit import client_ip
from projects.credentials import checked, remembered
from projects.models import Project

from .basic_auth import MalformedCredentials, basic_credentials
from .throttle import FailureThrottle


def _failures() -> FailureThrottle:
    # Built per call so tests and operators can change the settings.
    return FailureThrottle(
        "app-key",
        limit=settings.API_AUTH_FAILURE_LIMIT,
        window_seconds=settings.API_AUTH_FAILURE_WINDOW_SECONDS,
    )


class ProjectPrincipal:
    is_authenticated = True
    is_anonymous = False

    def __init__(self, project: Project):
        self.project = project

    def __str__(self) -> str:
        return f"app {self.project.app_id}"


class AppKeyAuthentication(BaseAuthentication):
    """HTTP Basic with APP_ID:APP_KEY."""

    www_authenticate_realm = "Video API"

    def authenticate(self, request):
        try:
            given = basic_credentials(request.META.get("HTTP_AUTHORIZATION", ""))
        except MalformedCredentials as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        if given is None:
            return None
        app_id, app_key = given
        project = Project.objects.filter(app_id=app_id).first()
        if project is not None and remembered(app_key, project.app_key_hash):
            # The right key, verified recently by this process: no hashing,
            # no cache query, nothing to throttle.
            return ProjectPrincipal(project), project
        # Per (APP_ID, address): a stranger's wrong keys never lock out the
        # media server elsewhere, and a throttled client costs no PBKDF2 run.
        # Only wrong keys that cost one are counted: a key already known to be
        # wrong (remembered in the shared cache) is refused for free.
        failures, who = _failures(), (app_id, client_ip(request) or "")
        if failures.is_throttled(*who):
            raise exceptions.Throttled(
                wait=failures.window_seconds,
                detail="Too many failed APP_KEY checks for this APP_ID from your address; "
                "wait and retry with the right key.",
            )
        if project is None:
            raise exceptions.AuthenticationFailed("Invalid APP_ID or APP_KEY")
        matches, hashed = checked(app_key, project.app_key_hash)
        if not matches:
            if hashed:
                failures.note_failure(*who)
            raise exceptions.AuthenticationFailed("Invalid APP_ID or APP_KEY")
        return ProjectPrincipal(project), project

    def authenticate_header(self, request) -> str:
        return f'Basic realm="{self.www_authenticate_realm}"'


class AppKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "portal.api_auth.AppKeyAuthentication"
    name = "appKeyBasic"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "basic",
            "description": "HTTP Basic with the project's APP_ID as user and APP_KEY as password.",
        }


class HasProject(BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, Project)
