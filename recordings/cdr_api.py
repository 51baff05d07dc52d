"""CDR API (Video API): call detail records in EnableX's CDR shape, built from
what the portal knows of a session — its room, start and end, the participants
of its metadata log (role, join and leave, published tracks) and those with an
individual recording: one record per participant.

EnableX fills ``user.ip``, ``user.agent``, ``sigserver`` and the like from its
signalling servers; the portal does not run those, so they are "" (strings as
EnableX types them) and ``usage`` counts recorded minutes. Pages hold up to
``PER_PAGE_MAX`` sessions, like the Archive API, at three queries per page, and
one more the first time a page's metadata logs are read (then kept on the
sessions, ``recordings.call_log``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from django.db.models import Q
from rest_framework import serializers
from rest_framework.views import APIView

from portal.api import enablex_time, ok
from projects.api import _int_param

from .archive_api import (
    PER_PAGE_DEFAULT,
    PER_PAGE_MAX,
    PERIOD,
    schema_factory,
    session_of_conf,
    sessions_in_period,
    sessions_of_room,
)
from .call_log import read_call_log
from .models import RecordingFile, Session

SESSION_FIELDS = (
    "id", "conf_num", "started_at", "ended_at", "processed_at", "room__room_id", "call_log",
)  # fmt: skip
Type = RecordingFile.Type


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


def _at(text: str | None, default: datetime | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else default


def cdr_entries(session: dict, recordings: list[tuple[str, float | None]], app_id: str) -> list:
    """One record per participant of ``session`` (``SESSION_FIELDS``), from its
    call log and ``recordings``, its individual files as (participant, seconds)."""
    call_log: dict = session["call_log"] or {}
    published: dict[str, float] = {name: 0.0 for name in call_log}
    for participant, seconds in recordings:
        published[participant] = published.get(participant, 0.0) + (seconds or 0.0)
    total = sum(published.values())
    entries = []
    for number, (participant, seconds) in enumerate(sorted(published.items()), start=1):
        cdr_id = hashlib.sha256(f"{session['id']}:{participant}".encode()).hexdigest()[:24]
        logged = call_log.get(participant) or {}
        joined = _at(logged.get("joined"), session["started_at"])
        left = _at(logged.get("left"), session["ended_at"])
        in_room = max((left - joined).total_seconds(), 0.0) if joined and left else 0.0
        # Without a log entry, a recording means the participant sent audio and video.
        tracks = {key: "true" if logged.get(key, True) else "false" for key in ("audio", "video")}
        entries.append({
            "trans_date": enablex_time(
                session["processed_at"] or session["ended_at"] or session["started_at"]
            ),
            "conf_num": session["conf_num"],
            "call_num": str(number),
            "call_log_id": cdr_id,
            "room": {
                "room_id": session["room__room_id"],
                "connect_dt": enablex_time(joined),
                "disconnect_dt": enablex_time(left),
                "duration": round(in_room, 3),
            },
            "user": {"ip": "", "name": participant, "role": logged.get("role", ""),
                     "ref": participant, "agent": "", "token": "", "confName": ""},
            "sigserver": {"connect_dt": enablex_time(joined), "ip": "",
                          "disconnect_dt": enablex_time(left), "duration": round(in_room, 3),
                          "hold_duration": 0.0},
            "published_track": {**tracks, "data": "false", "screen": "false", "url": "false"},
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
    logs: dict[int, str] = {}  # session id -> its metadata log, where not read yet
    unread = {s["id"] for s in chunk if s["call_log"] is None}
    if recordings:
        # Individual recordings count even once expired; a log is read only while kept.
        wanted = Q(type=Type.INDIVIDUAL) | Q(type=Type.METADATA, expired_at__isnull=True)
        for session_id, kind, participant, name, seconds, path in (
            RecordingFile.objects.filter(wanted, session_id__in=list(recordings))
            .order_by("session_id", "id")
            .values_list(
                "session_id", "type", "participant", "name", "duration_seconds", "storage_path"
            )
        ):
            if kind == Type.METADATA:
                if session_id in unread:
                    logs.setdefault(session_id, path)
            else:
                # An upload without a participant name is known by its file name.
                recordings[session_id].append((participant or name, seconds))
    if logs:
        read = [Session(pk=pk, call_log=read_call_log(path)) for pk, path in logs.items()]
        Session.objects.bulk_update(read, ["call_log"])
        parsed = {s.pk: s.call_log for s in read}
        for s in chunk:
            s["call_log"] = parsed.get(s["id"], s["call_log"])
    cdr = [entry for s in chunk for entry in cdr_entries(s, recordings[s["id"]], app_id)]
    return ok({"cdr": cdr, "total": total, "page": page, "per_page": per_page})


_schema = schema_factory("cdr", CdrEnvelopeSerializer)


class CdrPeriodView(APIView):
    @_schema("cdr_period", "Call detail records of sessions started in a period", PERIOD)
    def get(self, request, date_from: str, date_to: str):
        sessions = sessions_in_period(request.auth, date_from, date_to)
        return cdr_page(request, sessions, request.auth.app_id)


class CdrRoomView(APIView):
    @_schema("cdr_room", "Call detail records of a room", errors=(400, 401, 404))
    def get(self, request, room_id: str):
        return cdr_page(request, sessions_of_room(request.auth, room_id), request.auth.app_id)


class CdrRoomPeriodView(APIView):
    @_schema("cdr_room_period", "Call detail records of a room in a period", PERIOD,
             (400, 401, 404))  # fmt: skip
    def get(self, request, room_id: str, date_from: str, date_to: str):
        sessions = sessions_of_room(request.auth, room_id, date_from, date_to)
        return cdr_page(request, sessions, request.auth.app_id)


class CdrConfView(APIView):
    @_schema("cdr_conf", "Call detail records of one session", errors=(400, 401, 404))
    def get(self, request, conf_num: str):
        return cdr_page(request, session_of_conf(request.auth, conf_num), request.auth.app_id)
