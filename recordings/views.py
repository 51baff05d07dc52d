from __future__ import annotations

import json

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Exists, OuterRef, Q
from django.http import Http404
from django.shortcuts import render

from projects.access import get_project_for, projects_of
from projects.context import project_context
from projects.models import RecordingCredentials, Room

from . import store
from .models import RecordingFile, Session
from .report import (
    ReportFilterForm,
    cached_day_chart,
    file_entry,
    filtered_sessions,
    session_page,
)

# Chat and metadata files are parsed in memory to render them; bigger ones are
# offered as downloads only.
MAX_PARSED_BYTES = 5 * 1024 * 1024


def report_rooms(project) -> list[tuple[int, str, str]]:
    """(pk, room_id, label) of the rooms the report can filter by: the live ones,
    and the deleted ones whose past sessions it still lists, marked so."""
    rows = (
        Room.all_objects.filter(project=project)
        .filter(Q(deleted_at__isnull=True) | Exists(Session.objects.filter(room=OuterRef("pk"))))
        .order_by("name", "id")
        .values_list("pk", "room_id", "name", "deleted_at")
    )
    return [(pk, rid, f"{name} (deleted)" if deleted else name) for pk, rid, name, deleted in rows]


def report_context(request, project, *, foreign_room_means_all: bool = False) -> dict:
    """Filters, the keyset page of sessions with their 72-hour links, the
    chart and the recording credentials of ``project``: the same few queries
    whatever the page size. Shared by the project's Recordings tab and
    Video → Recordings, where switching projects keeps the previous one's
    room in the query (``foreign_room_means_all``: all rooms of the new one
    rather than an error)."""
    rooms = report_rooms(project)
    params = request.GET
    if foreign_room_means_all and params.get("room") not in {rid for _, rid, _ in rooms}:
        params = params.copy()
        params.pop("room", None)
    form = ReportFilterForm(params, rooms=[(rid, name) for _, rid, name in rooms])
    page = chart = None
    if form.is_valid():
        data = form.cleaned_data
        room_pk = next((pk for pk, rid, _ in rooms if rid == data["room"]), None)
        sessions = filtered_sessions(project, data["from"], data["to"], room_pk)
        page = session_page(
            sessions,
            data["per_page"],
            app_id=project.app_id,
            older_than=request.GET.get("older"),
            newer_than=request.GET.get("newer"),
        )
        chart = cached_day_chart(project, data["from"], data["to"], room_pk)
    credentials = RecordingCredentials.objects.filter(project=project).first()
    query = params.copy()
    for key in ("older", "newer"):
        query.pop(key, None)
    return {
        "form": form,
        "page": page,
        "chart": chart,
        "credentials": credentials,
        "has_rooms": bool(rooms),
        "filter_query": query.urlencode(),
        "link_hours": settings.RECORDING_LINK_MAX_AGE_HOURS,
    }


@login_required
def report(request, app_id):
    project = get_project_for(request.user, app_id)
    return render(
        request,
        "recordings/report.html",
        project_context(request, project, **report_context(request, project)),
    )


@login_required
def video_recordings(request):
    """Video → Recordings: the report of one of the user's projects, chosen
    with ``?project=<app_id>`` (the first one by name otherwise). Someone
    else's project is a 404, as everywhere."""
    projects = list(projects_of(request.user).values_list("app_id", "name"))
    context: dict = {"projects": projects, "project": None}
    chosen = request.GET.get("project") or (projects[0][0] if projects else "")
    if chosen:
        project = get_project_for(request.user, chosen)
        context["project"] = project
        context.update(report_context(request, project, foreign_room_means_all=True))
    return render(request, "recordings/video_report.html", context)


def _load_json(rf: RecordingFile):
    if rf.size > MAX_PARSED_BYTES:
        return None, f"{rf.name} is too big to show here ({rf.size} bytes); download it instead."
    try:
        return json.loads(store.read_bytes(rf.storage_path, MAX_PARSED_BYTES)), ""
    except FileNotFoundError:
        return None, f"{rf.name} is missing from the portal's storage."
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"{rf.name} is not valid JSON ({exc}); download it to inspect it."


def _chat_rows(data) -> list[dict]:
    if not isinstance(data, list):
        raise ValueError("a chat transcript is a JSON list of messages")
    return [
        {
            "timestamp": item.get("timestamp", ""),
            "from": item.get("from", ""),
            "message": item.get("message", ""),
        }
        for item in data
        if isinstance(item, dict)
    ]


def _metadata_rows(data) -> tuple[dict, list[dict]]:
    if not isinstance(data, dict) or not isinstance(data.get("events", []), list):
        raise ValueError("a metadata log is a JSON object with an 'events' list")
    summary = {k: v for k, v in data.items() if k != "events" and not isinstance(v, dict | list)}
    rows = []
    for event in data.get("events", []):
        if not isinstance(event, dict):
            continue
        known = ("timestamp", "event", "participant")
        rows.append(
            {
                "timestamp": event.get("timestamp", ""),
                "event": event.get("event", ""),
                "participant": event.get("participant", ""),
                "details": ", ".join(f"{k}={v}" for k, v in event.items() if k not in known),
            }
        )
    return summary, rows


@login_required
def file_page(request, app_id, file_id: int):
    project = get_project_for(request.user, app_id)
    rf = (
        RecordingFile.objects.select_related("session__room")
        .filter(project=project, pk=file_id)
        .first()
    )
    if rf is None:
        raise Http404("No such recording file in this project")
    context = {"file": rf, "entry": file_entry(rf), "session": rf.session}
    if not rf.is_expired and rf.type in (RecordingFile.Type.CHAT, RecordingFile.Type.METADATA):
        data, problem = _load_json(rf)
        if data is not None:
            try:
                if rf.type == RecordingFile.Type.CHAT:
                    context["chat"] = _chat_rows(data)
                else:
                    context["summary"], context["events"] = _metadata_rows(data)
            except ValueError as exc:
                problem = f"{rf.name} does not look like {exc}."
        context["problem"] = problem
    return render(request, "recordings/file.html", project_context(request, project, **context))
