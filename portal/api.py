"""Shared pieces of the JSON APIs (Video API v2, ingest API).

* Authentication is HTTP Basic with the project's ``APP_ID:APP_KEY``; the
  authenticated principal is a ``ProjectPrincipal`` and ``request.auth`` is
  the Project.
* Every response carries ``"result"``: 0 on success; failures carry a
  non-zero ``result`` and an ``error`` text, with the right HTTP status.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .api_auth import AppKeyAuthentication, HasProject, ProjectPrincipal

# Non-zero ``result`` codes by HTTP status, used unless a view gives its own
# (the ingest API uses the platform's 5xxx codes).
RESULT_FOR_STATUS = {
    400: 1001,
    401: 1002,
    403: 1003,
    404: 1004,
    405: 1005,
    409: 1009,
    413: 1013,
    415: 1015,
    429: 1029,
    500: 1500,
    507: 1507,
}


class ApiError(exceptions.APIException):
    """An error with an explicit ``result`` code, e.g. ``ApiError(5034,
    "Recording already started", status=409)``."""

    def __init__(self, result: int, error: str, *, status: int = 400):
        super().__init__(detail=error)
        self.result = result
        self.status_code = status


def ok(payload: dict[str, Any] | None = None, *, status_code: int = status.HTTP_200_OK) -> Response:
    return Response({"result": 0, **(payload or {})}, status=status_code)


def _flatten(detail: Any) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {_flatten(value)}" for key, value in detail.items())
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    return str(detail)


def exception_handler(exc, context):
    """Wrap every API error in the ``{"result": N, "error": "..."}`` envelope."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    result = getattr(exc, "result", None) or RESULT_FOR_STATUS.get(response.status_code, 1000)
    body: dict[str, Any] = {"result": result, "error": _flatten(response.data)}
    if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
        body["fields"] = {key: _flatten(value) for key, value in exc.detail.items()}
    response.data = body
    return response


__all__ = ["ApiError", "AppKeyAuthentication", "HasProject", "ProjectPrincipal", "ok"]

API_DEFAULTS = {
    "authentication_classes": [AppKeyAuthentication],
    "permission_classes": [HasProject],
}
