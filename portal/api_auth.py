"""Authentication of the JSON APIs: HTTP Basic with the project's APP_ID:APP_KEY.

Kept apart from ``portal.api`` because DRF imports these classes while
``rest_framework.views`` is still loading."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from projects.models import Project

from .basic_auth import MalformedCredentials, basic_credentials


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
        if project is None or not project.check_app_key(app_key):
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
