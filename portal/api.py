"""Shared pieces of the JSON APIs (Video API, ingest API).

* Authentication is HTTP Basic with the project's ``APP_ID:APP_KEY``; the
  authenticated principal is a ``ProjectPrincipal`` and ``request.auth`` is
  the Project.
* Every response carries ``"result"``: 0 on success. Failures are EnableX's
  error JSON ``{"result": N, "error": "...", "desc": "..."}`` with the right
  HTTP status — also for unknown routes, wrong methods and server errors under
  the API prefixes (``json_error_response`` serves Django's 404/500 handlers).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.http import Http404, JsonResponse
from django.urls import URLPattern, path
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .api_auth import AppKeyAuthentication, HasProject, ProjectPrincipal

# URL prefixes whose every answer is JSON, errors included.
API_PREFIXES = ("/video/v2/", "/v1/", "/ingest/v1/")

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

# What a client should do about each status: the ``desc`` of errors that give none.
DESC_FOR_STATUS = {
    400: "Fix the request body or path parameters named in the error and send it again.",
    401: "Send HTTP Basic credentials: the project's APP_ID as user and APP_KEY as password.",
    403: "These credentials may not do this.",
    404: "Check the path and the ids in it (rooms, sessions and conference numbers "
    "of this project only).",
    405: "Use one of the methods this route allows (the Allow header lists them).",
    409: "The current state does not allow this; see the error.",
    413: "Send a smaller upload.",
    415: "Send a supported media type.",
    429: "Wait a little and try again.",
    500: "The portal failed to answer; try again later. The failure is logged on the portal.",
    507: "The recording store is full; retry once space is freed.",
}


class ApiError(exceptions.APIException):
    """An error with an explicit ``result`` code, e.g. ``ApiError(5034,
    "Recording already started", status=409)``; ``desc`` adds details."""

    def __init__(self, result: int, error: str, *, status: int = 400, desc: str = ""):
        super().__init__(detail=error)
        self.result = result
        self.status_code = status
        self.desc = desc


def ok(payload: dict[str, Any] | None = None, *, status_code: int = status.HTTP_200_OK) -> Response:
    return Response({"result": 0, **(payload or {})}, status=status_code)


def enablex_time(moment: datetime | None) -> str | None:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC, milliseconds), as EnableX writes times."""
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _flatten(detail: Any) -> str:
    if isinstance(detail, dict):
        # DRF wraps plain messages as {"detail": "..."}: say the message only.
        if set(detail) == {"detail"}:
            return _flatten(detail["detail"])
        return "; ".join(f"{key}: {_flatten(value)}" for key, value in detail.items())
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    return str(detail)


def error_body(http_status: int, error: str, *, result: int | None = None, desc: str = "") -> dict:
    return {
        "result": result or RESULT_FOR_STATUS.get(http_status, 1000),
        "error": error,
        "desc": desc or DESC_FOR_STATUS.get(http_status, error),
    }


def exception_handler(exc, context):
    """Wrap every API error in the ``{"result", "error", "desc"}`` envelope."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    body = error_body(
        response.status_code,
        _flatten(response.data),
        result=getattr(exc, "result", None),
        desc=getattr(exc, "desc", ""),
    )
    if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
        body["fields"] = {key: _flatten(value) for key, value in exc.detail.items()}
    response.data = body
    return response


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES) or f"{path}/" in API_PREFIXES


def json_error_response(request, http_status: int) -> JsonResponse:
    """Django-level errors (no route, server error) under the API prefixes."""
    if http_status == 404:
        error = f"No route {request.method} {request.path}"
    elif http_status == 400:
        error = "Bad request (host or form refused)"
    else:
        error = "Internal error"
    return JsonResponse(error_body(http_status, error), status=http_status)


def api_routes(routes, *, documented: bool = True) -> list[URLPattern]:
    """URL patterns for ``(route, view class, name)`` rows, each with and
    without a trailing slash (EnableX clients use both). Only the documented
    form without the slash is named and appears in the OpenAPI schema; the
    ``/v1/`` alias of the Video API is built with ``documented=False``."""
    patterns = []
    for route, view, name in routes:
        if documented:
            patterns.append(path(route, view.as_view(), name=name))
        else:
            patterns.append(path(route, view.as_view(schema=None)))
        patterns.append(path(f"{route}/", view.as_view(schema=None)))
    return patterns


__all__ = ["ApiError", "AppKeyAuthentication", "HasProject", "ProjectPrincipal", "ok"]
