"""Archive API (Video API): a project's recordings by period, room,
room + period and conference number, in the EnableX response shape.

EnableX clients read ``archive`` and expect the whole answer, so a page holds
up to ``PER_PAGE_MAX`` sessions by default; ``total``, ``page``, ``per_page``
and ``next`` sit next to ``archive`` for clients that page through more. A page
costs the same four queries whatever its size: count, sessions (+ room), files,
and the room lookup where a room is named.
"""

from __future__ import annotations

import re
from datetime import date
from urllib.parse import quote

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from portal.api import ApiError, enablex_time, ok
from projects.api import _int_param, error_responses
from projects.models import Project, Room

from .links import files_origin
from .models import RecordingFile, Session
from .report import day_bounds

# EnableX clients do not page: the whole answer of a typical query (up to
# this many sessions) comes in one response. The cost per page is the same
# four queries; bench/report.py measures pages of 25 and 100 sessions.
PER_PAGE_MAX = 1000
PER_PAGE_DEFAULT = PER_PAGE_MAX
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_URL_SAFE = "!$&'()*+,;=/~:@"
SESSION_FIELDS = (
    "id", "conf_num", "started_at", "ended_at", "processed_at", "room__room_id",
    "state", "processing_error",
)  # fmt: skip
FILE_FIELDS = (
    "id", "session_id", "type", "name", "size", "sha256", "content_type", "participant",
    "duration_seconds", "created_at", "expired_at",
)  # fmt: skip
LISTS = {
    RecordingFile.Type.INDIVIDUAL: "recording",
    RecordingFile.Type.TRANSCODED: "transcoded",
    RecordingFile.Type.LIVE: "live_recording",
}


class ArchiveFileSerializer(serializers.Serializer):
    url = serializers.URLField(
        allow_null=True, help_text="HTTP Basic with the recording credentials; null once expired."
    )
    name = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    content_type = serializers.CharField()
    participant = serializers.CharField(allow_blank=True)
    duration = serializers.FloatField(allow_null=True, help_text="Seconds, for media files.")
    created_at = serializers.CharField(help_text="YYYY-MM-DDTHH:MM:SS.mmmZ (UTC).")
    expired = serializers.BooleanField(help_text="Removed from the portal's storage.")


class ArchiveEntrySerializer(serializers.Serializer):
    _id = serializers.CharField(help_text="Archive entry id (24 hex digits).")
    trans_date = serializers.CharField(
        help_text="When processing finished, YYYY-MM-DDTHH:MM:SS.mmmZ (UTC)."
    )
    conf_num = serializers.CharField()
    app_id = serializers.CharField()
    room_id = serializers.CharField()
    started_at = serializers.CharField(help_text="YYYY-MM-DDTHH:MM:SS.mmmZ (UTC).")
    ended_at = serializers.CharField(allow_null=True)
    recording = ArchiveFileSerializer(many=True, help_text="Individual recordings.")
    transcoded = ArchiveFileSerializer(many=True)
    live_recording = ArchiveFileSerializer(many=True)
    chatdata = serializers.CharField(allow_blank=True, help_text='URL, or "" without a chat.')
    metadata = serializers.CharField(allow_blank=True, help_text='URL, or "" without one.')
    state = serializers.ChoiceField(choices=Session.State.values)
    failure_reason = serializers.CharField(
        allow_blank=True, help_text="Why processing failed (state `failed`), else empty."
    )


class ArchiveEnvelopeSerializer(serializers.Serializer):
    result = serializers.IntegerField(help_text="0 on success.")
    archive = ArchiveEntrySerializer(many=True)
    total = serializers.IntegerField(help_text="Sessions matching, over all pages.")
    page = serializers.IntegerField()
    per_page = serializers.IntegerField()
    next = serializers.URLField(allow_null=True, help_text="The next page, or null.")


def parse_day(raw: str, name: str) -> date:
    try:
        if _DATE.match(raw):
            return date.fromisoformat(raw)
    except ValueError:
        pass
    raise ApiError(1001, f"{name} date {raw!r} is not a valid YYYY-MM-DD date (UTC)", status=400)


def period(date_from: str, date_to: str):
    start, end = parse_day(date_from, "From"), parse_day(date_to, "To")
    if start > end:
        raise ApiError(
            1001, f"The period starts ({start}) after it ends ({end}); swap the dates", status=400
        )
    return day_bounds(start, end)


def _file(rf: tuple, prefix: str) -> dict:
    _, _, _, name, size, sha256, content_type, participant, duration, created_at, expired_at = rf
    expired = expired_at is not None
    return {
        "url": None if expired else prefix + quote(name, safe=_URL_SAFE),
        "name": name,
        "size": size,
        "sha256": sha256,
        "content_type": content_type,
        "participant": participant,
        "duration": duration,
        "created_at": enablex_time(created_at),
        "expired": expired,
    }


def archive_entry(session: dict, files: list[tuple], app_id: str, files_base: str) -> dict:
    """One session in the EnableX shape, from ``SESSION_FIELDS`` and its
    ``FILE_FIELDS`` rows."""
    room_id = session["room__room_id"]
    conf_num = quote(session["conf_num"], safe=_URL_SAFE)
    prefix = f"{files_base}{quote(room_id, safe=_URL_SAFE)}/{conf_num}/"
    started_at, ended_at = session["started_at"], session["ended_at"]
    entry: dict = {
        "_id": f"{session['id']:024x}",
        "trans_date": enablex_time(session["processed_at"] or ended_at or started_at),
        "conf_num": session["conf_num"],
        "app_id": app_id,
        "room_id": room_id,
        "started_at": enablex_time(started_at),
        "ended_at": enablex_time(ended_at),
        "recording": [],
        "transcoded": [],
        "live_recording": [],
        # Clients type these as strings: "" when the session has none.
        "chatdata": "",
        "metadata": "",
        "state": session["state"],
        "failure_reason": session["processing_error"],
    }
    for rf in files:
        kind = rf[2]
        item = _file(rf, prefix)
        if kind in LISTS:
            entry[LISTS[kind]].append(item)
        elif kind == RecordingFile.Type.CHAT and not entry["chatdata"]:
            entry["chatdata"] = item["url"] or ""
        elif kind == RecordingFile.Type.METADATA and not entry["metadata"]:
            entry["metadata"] = item["url"] or ""
    return entry


def _files_base(app_id: str) -> str:
    """``{files origin}/recordings/<app_id>/``: reverse() once per page."""
    path = reverse("recordings:protected_file", args=[app_id, "ROOM", "CONF", "_"])
    return files_origin() + path.removesuffix("ROOM/CONF/_")


def archive_page(request, sessions, project: Project):
    page = _int_param(request, "page", 1, 1, 10**6)
    per_page = _int_param(request, "per_page", PER_PAGE_DEFAULT, 1, PER_PAGE_MAX)
    total = sessions.count()
    start = (page - 1) * per_page
    chunk = list(
        sessions.order_by("started_at", "id").values(*SESSION_FIELDS)[start : start + per_page]
    )
    files: dict[int, list[tuple]] = {s["id"]: [] for s in chunk}
    if files:
        for rf in (
            RecordingFile.objects.filter(session_id__in=list(files))
            .order_by("session_id", "type", "name")
            .values_list(*FILE_FIELDS)
        ):
            files[rf[1]].append(rf)
    next_url = None
    if start + per_page < total:
        query = request.query_params.copy()
        query["page"] = str(page + 1)
        next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
    files_base = _files_base(project.app_id)
    return ok(
        {
            "archive": [
                archive_entry(s, files[s["id"]], project.app_id, files_base) for s in chunk
            ],
            "total": total,
            "page": page,
            "per_page": per_page,
            "next": next_url,
        }
    )


def room_of(project: Project, room_id: str) -> Room:
    # Deleted rooms too: the recordings of their past sessions stay listed.
    room = Room.all_objects.filter(project=project, room_id=room_id).only("id").first()
    if room is None:
        raise ApiError(1004, f"No room {room_id!r} in this project", status=404)
    return room


PAGING = [
    OpenApiParameter("page", int, description="1-based page number (default 1)."),
    OpenApiParameter(
        "per_page",
        int,
        description=f"Sessions per page (default {PER_PAGE_DEFAULT}, at most {PER_PAGE_MAX}).",
    ),
]
PERIOD = [
    OpenApiParameter("date_from", str, OpenApiParameter.PATH, description="YYYY-MM-DD (UTC)"),
    OpenApiParameter("date_to", str, OpenApiParameter.PATH, description="YYYY-MM-DD, inclusive"),
]


def schema_factory(tag: str, envelope):
    """``_schema(operation_id, summary, extra_parameters, errors)`` for the
    paged GET routes of one API (archive, CDR)."""

    def schema(operation_id: str, summary: str, extra=(), errors=(400, 401)):
        return extend_schema(
            operation_id=operation_id,
            summary=summary,
            tags=[tag],
            parameters=[*extra, *PAGING],
            responses={200: envelope, **error_responses(*errors)},
        )

    return schema


_schema = schema_factory("archive", ArchiveEnvelopeSerializer)


# The sessions each route selects; the archive and the CDR answer the same ones.
def sessions_in_period(project, date_from: str, date_to: str):
    low, high = period(date_from, date_to)
    return Session.objects.filter(project=project, started_at__gte=low, started_at__lt=high)


def sessions_of_room(project, room_id: str, date_from: str = "", date_to: str = ""):
    sessions = Session.objects.filter(room=room_of(project, room_id))
    if date_from or date_to:
        low, high = period(date_from, date_to)
        sessions = sessions.filter(started_at__gte=low, started_at__lt=high)
    return sessions


def session_of_conf(project, conf_num: str):
    sessions = Session.objects.filter(project=project, conf_num=conf_num)
    if not sessions.exists():
        raise ApiError(1004, f"No session {conf_num!r} in this project", status=404)
    return sessions


class ArchivePeriodView(APIView):
    @_schema("archive_period", "Recordings of sessions started in a period", PERIOD)
    def get(self, request, date_from: str, date_to: str):
        sessions = sessions_in_period(request.auth, date_from, date_to)
        return archive_page(request, sessions, request.auth)


class ArchiveRoomView(APIView):
    @_schema("archive_room", "Recordings of a room", errors=(400, 401, 404))
    def get(self, request, room_id: str):
        return archive_page(request, sessions_of_room(request.auth, room_id), request.auth)


class ArchiveRoomPeriodView(APIView):
    @_schema("archive_room_period", "Recordings of a room in a period", PERIOD, (400, 401, 404))
    def get(self, request, room_id: str, date_from: str, date_to: str):
        sessions = sessions_of_room(request.auth, room_id, date_from, date_to)
        return archive_page(request, sessions, request.auth)


class ArchiveRoomPeriodAliasView(ArchiveRoomPeriodView):
    """``room-period/{room_id}/period/{from}/{to}``, which some clients call."""

    @_schema("archive_room_period_alias", "Same as archive/room-period/{room_id}/{from}/{to}",
             PERIOD, (400, 401, 404))  # fmt: skip
    def get(self, request, room_id: str, date_from: str, date_to: str):
        return super().get(request, room_id, date_from, date_to)


class ArchiveRoomPeriodOldView(ArchiveRoomPeriodView):
    """The portal's older spelling ``room/{room_id}/period/{from}/{to}``."""

    @_schema("archive_room_period_old", "Same as archive/room-period/{room_id}/{from}/{to}",
             PERIOD, (400, 401, 404))  # fmt: skip
    def get(self, request, room_id: str, date_from: str, date_to: str):
        return super().get(request, room_id, date_from, date_to)


class ArchiveConfNumView(APIView):
    @_schema("archive_conf", "Recordings of one session", errors=(401, 404))
    def get(self, request, conf_num: str):
        return archive_page(request, session_of_conf(request.auth, conf_num), request.auth)


class ArchiveConfNumAliasView(ArchiveConfNumView):
    @_schema("archive_conf_num", "Same as archive/conf (the portal's older spelling)",
             errors=(401, 404))  # fmt: skip
    def get(self, request, conf_num: str):
        return super().get(request, conf_num)
