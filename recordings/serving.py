"""Serving recording files: HTTP Basic guard, conditional and Range requests.

``stored_file_response`` is shared by the protected URL and the signed portal
links. It streams from the recording store in chunks (bounded memory; one
ranged GET on a bucket),
honours a single ``Range``, ``If-Range``, ``If-None-Match`` and
``If-Modified-Since``, and hands the bytes to nginx with ``X-Accel-Redirect``
when ``RECORDINGS_X_ACCEL_PREFIX`` is set and the store is a local folder.

Every byte of a recording came from a media server and is untrusted, so files
are served as data, never as pages: only audio, video and JPEG may be shown
inline, any other type is an attachment of a type the portal knows (or
``application/octet-stream``), and every response of these views carries a
sandboxing CSP, ``nosniff`` and ``DENY`` (``served_as_data``). nginx adds the
same three headers itself to what it serves (deploy/nginx.conf.template).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import quote

from csp.decorators import csp_exempt
from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils.http import http_date, parse_http_date_safe
from django.views.decorators.http import require_http_methods

from portal.basic_auth import MalformedCredentials, basic_challenge, basic_credentials
from projects.audit import client_ip, log_audit
from projects.models import AuditEvent, Project

from . import store, throttle
from .models import RecordingFile

CHUNK_SIZE = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")

# The same three headers are written by nginx (deploy/nginx.conf.template) for
# the bytes it serves; keep both in step. ``sandbox`` without allow-scripts
# keeps script from running even in a document the browser decides to render.
FILE_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; media-src 'self'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
# Stored types the portal itself produces (ingest probes media; chat and
# metadata are JSON; posters are JPEG). Anything else in the database, e.g. a
# client's text/html left by an older ingest, is served as opaque bytes.
# No "+" in the subtype: browsers render any "…+xml" type as an XML document.
_MEDIA_TYPE = re.compile(r"^(video|audio)/[a-z0-9][a-z0-9.-]{0,60}$")
_KNOWN_TYPES = frozenset({"image/jpeg", "application/json"})
OPAQUE = "application/octet-stream"


def served_type(stored: str) -> str:
    """The Content-Type to send for a stored type: never one the portal does not know."""
    stored = stored.strip().lower()
    return stored if _MEDIA_TYPE.match(stored) or stored in _KNOWN_TYPES else OPAQUE


def may_be_inline(content_type: str) -> bool:
    """Only media a browser plays or shows as a picture; never a document."""
    return content_type == "image/jpeg" or bool(_MEDIA_TYPE.match(content_type))


def served_as_data(view: Callable) -> Callable:
    """Give every answer of a file view (200, 206, 304, 401, 403, 410, ...) the
    file security headers. django-csp is told to leave the response alone, so
    it neither replaces nor merges the portal's page policy into it."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        for name, value in FILE_SECURITY_HEADERS.items():
            response[name] = value
        return response

    return csp_exempt()(wrapper)


@dataclass(frozen=True)
class StoredFile:
    """What is needed to serve bytes of the recordings storage."""

    storage_path: str
    size: int
    etag: str
    last_modified: datetime | None
    content_type: str
    filename: str

    @classmethod
    def of_recording(cls, rf: RecordingFile) -> StoredFile:
        tag = rf.sha256[:40] if rf.sha256 else f"{rf.pk}-{rf.size}"
        # The stored type only; the file name is the client's and proves nothing.
        return cls(
            storage_path=rf.storage_path,
            size=rf.size,
            etag=f'"{tag}"',
            last_modified=rf.created_at,
            content_type=served_type(rf.content_type),
            filename=rf.name,
        )

    @classmethod
    def of_poster(cls, rf: RecordingFile) -> StoredFile:
        size = store.size(rf.poster_path)
        name = rf.poster_path.rsplit("/", 1)[-1]
        return cls(
            storage_path=rf.poster_path,
            size=size,
            etag=f'"poster-{rf.sha256[:24] or rf.pk}-{size}"',
            last_modified=rf.created_at,
            content_type="image/jpeg",  # processing writes posters as JPEG
            filename=name,
        )


def _etag_matches(header: str, etag: str) -> bool:
    tags = [t.strip() for t in header.split(",")]
    weakless = etag.removeprefix("W/")
    return "*" in tags or any(t.removeprefix("W/") == weakless for t in tags)


def _not_modified(request: HttpRequest, f: StoredFile) -> bool:
    inm = request.headers.get("If-None-Match")
    if inm is not None:
        return _etag_matches(inm, f.etag)
    ims = parse_http_date_safe(request.headers.get("If-Modified-Since", ""))
    if ims is not None and f.last_modified is not None:
        return int(f.last_modified.timestamp()) <= ims
    return False


def _range_applies(request: HttpRequest, f: StoredFile) -> bool:
    if_range = request.headers.get("If-Range")
    if if_range is None:
        return True
    if if_range.startswith('"') or if_range.startswith("W/"):
        return if_range == f.etag  # strong comparison only
    when = parse_http_date_safe(if_range)
    return bool(when and f.last_modified and int(f.last_modified.timestamp()) <= when)


def parse_range(header: str, size: int) -> tuple[int, int] | Literal[False] | None:
    """(start, end) inclusive for a single satisfiable range, None to ignore the
    header (malformed or several ranges: serve the whole file), False when
    unsatisfiable."""
    match = _RANGE.match(header.strip())
    if not match:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            return False
        return max(0, size - length), size - 1
    start = int(first)
    if start >= size:
        return False
    end = int(last) if last else size - 1
    if end < start:
        return None
    return start, min(end, size - 1)


def stored_file_response(
    request: HttpRequest, f: StoredFile, *, inline: bool = False
) -> HttpResponse | StreamingHttpResponse:
    """``inline`` is what the caller asks for; only media get it."""
    headers = {
        "ETag": f.etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=0, must-revalidate",
    }
    if f.last_modified is not None:
        headers["Last-Modified"] = http_date(f.last_modified.timestamp())
    if _not_modified(request, f):
        return HttpResponse(status=304, headers=headers)

    disposition = "inline" if inline and may_be_inline(f.content_type) else "attachment"
    headers["Content-Disposition"] = f"{disposition}; filename*=UTF-8''{quote(f.filename)}"
    headers["Content-Type"] = f.content_type
    if settings.RECORDINGS_X_ACCEL_PREFIX and store.is_local():
        # nginx serves the bytes, ranges and HEAD itself; Django sends no body.
        # A bucket is streamed by Django below (nginx would need the bucket's
        # credentials to fetch from it).
        prefix = settings.RECORDINGS_X_ACCEL_PREFIX.rstrip("/")
        headers["X-Accel-Redirect"] = f"{prefix}/{quote(f.storage_path)}"
        return HttpResponse(headers=headers)

    start, length, status = 0, f.size, 200
    header = request.headers.get("Range")
    if header and _range_applies(request, f):
        parsed = parse_range(header, f.size)
        if parsed is False:
            headers["Content-Range"] = f"bytes */{f.size}"
            headers["Content-Type"] = "text/plain; charset=utf-8"
            return HttpResponse(
                f"Range {header!r} is outside the file ({f.size} bytes).",
                status=416,
                headers=headers,
            )
        if parsed:
            start, end = parsed
            length, status = end - start + 1, 206
            headers["Content-Range"] = f"bytes {start}-{end}/{f.size}"
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        return HttpResponse(status=status, headers=headers)
    return StreamingHttpResponse(
        store.iter_range(f.storage_path, start, length, CHUNK_SIZE), status=status, headers=headers
    )


def expired_response(request: HttpRequest, name: str, *, status: int = 410) -> HttpResponse:
    return render(
        request,
        "recordings/gone.html",
        {
            "title": "This recording was removed",
            "message": (
                f"{name} was removed from the portal's storage after the retention "
                "period. Copies delivered to your own storage are not affected."
            ),
            "portal_url": settings.PUBLIC_BASE_URL,
        },
        status=status,
    )


def _basic_credentials(request: HttpRequest) -> tuple[str, str] | None:
    try:
        return basic_credentials(request.headers.get("Authorization", ""))
    except MalformedCredentials:
        return ("", "")  # answered like wrong credentials


def _wants_html(request: HttpRequest) -> bool:
    return "text/html" in request.headers.get("Accept", "")


def realm_of(app_id: str) -> str:
    """One realm per project, so a browser never sends one project's recording
    credentials to another's files. The app_id rather than the project's name:
    it is unique, and the challenge goes to anyone who knows a file's URL."""
    return f"Recordings of {app_id}"


def _challenge(app_id: str, message: str) -> HttpResponse:
    response = HttpResponse(message, status=401, content_type="text/plain; charset=utf-8")
    response["WWW-Authenticate"] = basic_challenge(realm_of(app_id))
    return response


def _record_failure(ip: str | None, project: Project | None, username: str) -> None:
    count = throttle.note_failure(ip)
    if count == throttle.FAILURE_LIMIT and project is not None:
        log_audit(
            project,
            AuditEvent.Action.BASIC_AUTH_FAILURES,
            ip=ip,
            failures=count,
            window_seconds=throttle.WINDOW_SECONDS,
            username=username[:64],
        )


@served_as_data
@require_http_methods(["GET", "HEAD"])
def protected_file(request, app_id: str, room_id: str, conf_num: str, name: str):
    ip = client_ip(request)
    if throttle.is_throttled(ip):
        response = HttpResponse(
            "Too many failed logins from your address; wait a few minutes and try again.",
            status=429,
            content_type="text/plain; charset=utf-8",
        )
        response["Retry-After"] = str(throttle.WINDOW_SECONDS)
        return response
    given = _basic_credentials(request)
    if given is None:
        if _wants_html(request):
            return _challenge(app_id, "Log in with the project's recording username and password.")
        return HttpResponse(
            "Recording files need HTTP Basic with the project's recording credentials.",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    project = Project.objects.select_related("recording_credentials").filter(app_id=app_id).first()
    credentials = getattr(project, "recording_credentials", None) if project else None
    if credentials is None or not credentials.matches(*given):
        _record_failure(ip, project, given[0])
        return _challenge(app_id, "Wrong recording username or password for this project.")
    rf = (
        RecordingFile.objects.filter(
            project=project, session__room__room_id=room_id, session__conf_num=conf_num, name=name
        )
        .only(*_SERVED_FIELDS)
        .first()
    )
    if rf is None:
        return HttpResponse(
            f"No file {name!r} in session {conf_num} of room {room_id}.",
            status=404,
            content_type="text/plain; charset=utf-8",
        )
    if rf.is_expired:
        return expired_response(request, rf.name)
    # Shown in the browser as before when it is media; anything else downloads.
    return stored_file_response(request, StoredFile.of_recording(rf), inline=True)


_SERVED_FIELDS = (
    "id",
    "name",
    "size",
    "sha256",
    "storage_path",
    "content_type",
    "poster_path",
    "created_at",
    "expired_at",
)
