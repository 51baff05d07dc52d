"""CDR API (Video API): call detail records in EnableX's CDR shape, built from
what the portal knows of a session — its room, start, end and the recorded
participants (one record per participant with an individual recording).

EnableX fills ``user.ip``, ``user.agent``, ``sigserver`` and the like from its
signalling servers; the portal does not run those, so they are "" (strings as
EnableX types them) and ``usage`` counts recorded minutes. Pages hold up to
``PER_PAGE_MAX`` sessions, like the Archive API, at three queries per page.
"""

from __future__ import annotations

import hashlib

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from portal.api import ApiError, enablex_time, ok
from projects.api import _int_param, error_responses

from .archive_api import PAGING, PER_PAGE_DEFAULT, PER_PAGE_MAX, PERIOD, period, room_of
from .models import RecordingFile, Session

SESSION_FIELDS = ("id", "conf_num", "started_at", "ended_at", "processed_at", "room__room_id")


class CdrRoomSerializer(serializers.Serializer):
    room_id = serializers.CharField()
    connect_dt = serializers.CharField(help_text="YYYY-MM-DDTHH:MM:SS.mmmZ (UTC)")
    disconnect_dt = serializers.CharField(allow_null=True)
    duration = serializers.FloatField(help_text="Seconds in the session.")


class CdrUserSerializer(serializers.Serializer):
    ip = serializers.CharField(allow_blank=True)
    name = serializers.CharField()
    role = serializers.CharField(allow_blank=True)
    ref = serializers.CharField(allow_blank=True)
    agent = serializers.CharField(allow_blank=True)
    token = serializers.CharField(allow_blank=True)
    confName = serializers.CharField(allow_blank=True)  # noqa: N815 (EnableX's key)


class CdrUsageSerializer(serializers.Serializer):
    subscribed_minutes = serializers.FloatField()
    published_minutes = serializers.FloatField()


class CdrEntrySerializer(serializers.Serializer):
    trans_date = serializers.CharField()
    conf_num = serializers.CharField()
    call_num = serializers.CharField()
    call_log_id = serializers.CharField()
    room = CdrRoomSerializer()
    user = CdrUserSerializer()
    sigserver = serializers.DictField()
    published_track = serializers.DictField(child=serializers.CharField())
    usage = CdrUsageSerializer()
    app_id = serializers.CharField()
    cdr_id = serializers.CharField()


class CdrEnvelopeSerializer(serializers.Serializer):
    result = serializers.IntegerField(help_text="0 on success.")
    cdr = CdrEntrySerializer(many=True)
    total = serializers.IntegerField(help_text="Sessions matching, over all pages.")
    page = serializers.IntegerField()
    per_page = serializers.IntegerField()


def _minutes(seconds: float | None) -> float:
    return round((seconds or 0.0) / 60, 3)


def cdr_entries(session: dict, recordings: list[tuple[str, float | None]], app_id: str) -> list:
    """One record per recorded participant of ``session`` (``SESSION_FIELDS``);
    ``recordings`` are its individual files as (participant, seconds)."""
    started, ended = session["started_at"], session["ended_at"]
    in_room = (ended - started).total_seconds() if ended else 0.0
    published: dict[str, float] = {}
    for participant, seconds in recordings:
        published[participant] = published.get(participant, 0.0) + (seconds or 0.0)
    total = sum(published.values())
    entries = []
    for number, (participant, seconds) in enumerate(sorted(published.items()), start=1):
        cdr_id = hashlib.sha256(f"{session['id']}:{participant}".encode()).hexdigest()[:24]
        entries.append({
            "trans_date": enablex_time(session["processed_at"] or ended or started),
            "conf_num": session["conf_num"],
            "call_num": str(number),
            "call_log_id": cdr_id,
            "room": {
                "room_id": session["room__room_id"],
                "connect_dt": enablex_time(started),
                "disconnect_dt": enablex_time(ended),
                "duration": round(in_room, 3),
            },
            "user": {"ip": "", "name": participant, "role": "", "ref": participant,
                     "agent": "", "token": "", "confName": ""},
            "sigserver": {"connect_dt": enablex_time(started), "ip": "",
                          "disconnect_dt": enablex_time(ended), "duration": round(in_room, 3),
                          "hold_duration": 0.0},
            "published_track": {"audio": "true", "data": "false", "video": "true",
                                "screen": "false", "url": "false"},
            # Recorded minutes: what this participant sent, and what the others sent to them.
            "usage": {"published_minutes": _minutes(seconds),
                      "subscribed_minutes": _minutes(total - seconds)},
            "app_id": app_id,
            "cdr_id": cdr_id,
        })  # fmt: skip
    return entries


def cdr_page(request, sessions, app_id: str):
    page = _int_param(request, "page", 1, 1, 10**6)
    per_page = _int_param(request, "per_page", PER_PAGE_DEFAULT, 1, PER_PAGE_MAX)
    total = sessions.count()
    start = (page - 1) * per_page
    chunk = list(
        sessions.order_by("started_at", "id").values(*SESSION_FIELDS)[start : start + per_page]
    )
    recordings: dict[int, list] = {s["id"]: [] for s in chunk}
    if recordings:
        for session_id, participant, name, seconds in (
            RecordingFile.objects.filter(
                session_id__in=list(recordings), type=RecordingFile.Type.INDIVIDUAL
            )
            .order_by("session_id", "id")
            .values_list("session_id", "participant", "name", "duration_seconds")
        ):
            # An upload without a participant name is known by its file name.
            recordings[session_id].append((participant or name, seconds))
    cdr = [entry for s in chunk for entry in cdr_entries(s, recordings[s["id"]], app_id)]
    return ok({"cdr": cdr, "total": total, "page": page, "per_page": per_page})


def _schema(operation_id: str, summary: str, extra=(), errors=(400, 401)):
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        tags=["cdr"],
        parameters=[*extra, *PAGING],
        responses={200: CdrEnvelopeSerializer, **error_responses(*errors)},
    )


class CdrPeriodView(APIView):
    @_schema("cdr_period", "Call detail records of sessions started in a period", PERIOD)
    def get(self, request, date_from: str, date_to: str):
        low, high = period(date_from, date_to)
        sessions = Session.objects.filter(
            project=request.auth, started_at__gte=low, started_at__lt=high
        )
        return cdr_page(request, sessions, request.auth.app_id)


class CdrRoomView(APIView):
    @_schema("cdr_room", "Call detail records of a room", errors=(400, 401, 404))
    def get(self, request, room_id: str):
        room = room_of(request.auth, room_id)
        return cdr_page(request, Session.objects.filter(room=room), request.auth.app_id)


class CdrRoomPeriodView(APIView):
    @_schema("cdr_room_period", "Call detail records of a room in a period", PERIOD,
             (400, 401, 404))  # fmt: skip
    def get(self, request, room_id: str, date_from: str, date_to: str):
        low, high = period(date_from, date_to)
        room = room_of(request.auth, room_id)
        sessions = Session.objects.filter(room=room, started_at__gte=low, started_at__lt=high)
        return cdr_page(request, sessions, request.auth.app_id)


class CdrConfView(APIView):
    @_schema("cdr_conf", "Call detail records of one session", errors=(400, 401, 404))
    def get(self, request, conf_num: str):
        sessions = Session.objects.filter(project=request.auth, conf_num=conf_num)
        if not sessions.exists():
            raise ApiError(1004, f"No session {conf_num!r} in this project", status=404)
        return cdr_page(request, sessions, request.auth.app_id)
