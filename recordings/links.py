"""Signed, time-limited download links of the Recordings report (``/dl/<token>``).

The token is ``django.core.signing`` output (HMAC with SECRET_KEY, salted,
timestamped) holding the file id, and for posters a marker. It needs no login
and works for ``RECORDING_LINK_MAX_AGE_HOURS``; afterwards it answers 410.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.core import signing
from django.shortcuts import render
from django.urls import get_script_prefix, reverse
from django.views.decorators.http import require_http_methods

from . import store
from .models import RecordingFile
from .serving import StoredFile, expired_response, served_as_data, stored_file_response

SALT = "recordings.download-link"
POSTER = "poster"


def make_token(file_id: int, *, poster: bool = False) -> str:
    payload: list = [file_id, POSTER] if poster else [file_id]
    return signing.dumps(payload, salt=SALT, compress=False)


@functools.lru_cache(maxsize=8)
def _link_prefix(script_prefix: str) -> str:
    # reverse() once per prefix: a report page makes hundreds of links.
    return reverse("recordings:download", args=["_"])[:-1]


def files_origin(*, absolute: bool = True) -> str:
    """Where recording file URLs and /dl/ links point: RECORDINGS_PUBLIC_BASE_URL
    (a separate, cookie-less origin) when set, else the portal itself —
    ``PUBLIC_BASE_URL`` for URLs that leave the portal (Archive API, webhooks),
    nothing (a path on the page's own host) for links in its pages."""
    if settings.RECORDINGS_PUBLIC_BASE_URL:
        return settings.RECORDINGS_PUBLIC_BASE_URL
    return settings.PUBLIC_BASE_URL if absolute else ""


def link_for(rf: RecordingFile, *, poster: bool = False, inline: bool = False) -> str:
    url = files_origin(absolute=False) + _link_prefix(get_script_prefix())
    url += make_token(rf.pk, poster=poster)
    return f"{url}?inline=1" if inline else url


def max_age_seconds() -> int:
    return settings.RECORDING_LINK_MAX_AGE_HOURS * 3600


def _refused(request, title: str, message: str, status: int):
    context = {"title": title, "message": message, "portal_url": settings.PUBLIC_BASE_URL}
    return render(request, "recordings/gone.html", context, status=status)


@served_as_data
@require_http_methods(["GET", "HEAD"])
def download(request, token: str):
    try:
        payload = signing.loads(token, salt=SALT, max_age=max_age_seconds())
    except signing.SignatureExpired:
        hours = settings.RECORDING_LINK_MAX_AGE_HOURS
        return _refused(
            request,
            "This link expired",
            f"Download links work for {hours} hours. This link expired; ask for a new one "
            "in the Recordings report of the project (open the report and copy the link again).",
            410,
        )
    except signing.BadSignature:
        return _refused(
            request,
            "This link is not valid",
            "The link was changed or cut short. Copy it again from the Recordings report.",
            400,
        )
    if not isinstance(payload, list) or not payload or not isinstance(payload[0], int):
        return _refused(request, "This link is not valid", "Copy it again from the report.", 400)
    rf = RecordingFile.objects.filter(pk=payload[0]).first()
    if rf is None:
        return _refused(
            request, "No such recording", "The recording this link points to was deleted.", 404
        )
    if rf.is_expired:
        return expired_response(request, rf.name)
    inline = request.GET.get("inline") == "1"
    if payload[1:] == [POSTER]:
        if not rf.poster_path or not store.exists(rf.poster_path):
            return _refused(request, "No poster", "This recording has no poster image.", 404)
        return stored_file_response(request, StoredFile.of_poster(rf), inline=True)
    return stored_file_response(request, StoredFile.of_recording(rf), inline=inline)
