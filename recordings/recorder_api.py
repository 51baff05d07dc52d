"""Ingest API v1, live recording and streaming: start and stop (which take a
recorder slot, so a start may wait) and the session's state. Views are thin:
``recordings.actions.recorders`` holds the queue."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.api import ApiError, ok
from projects.api import ErrorEnvelopeSerializer, error_responses, json_object

from .actions import recorders, sessions
from .ingest_api import SESSION_FIELDS, RoleRequest, SessionEnvelope, session_data

RecorderEnvelope = inline_serializer(
    "RecorderEnvelope",
    {
        "result": serializers.IntegerField(
            help_text="0 done; 7207 / 7104 waiting for a recorder (HTTP 202); 7039 / 7046 "
            "removed from waiting (stop while waiting)."
        ),
        "msg": serializers.CharField(required=False),
        "position": serializers.IntegerField(required=False, help_text="Place in the queue."),
        **SESSION_FIELDS,
    },
)
StillWaitingEnvelope = inline_serializer(
    "StillWaitingEnvelope",
    {
        "result": serializers.IntegerField(
            help_text="7208 (live recording) / 7105 (streaming): the first start still waits; "
            "or another state code (5122, 5139, 1009 session ended)"
        ),
        "error": serializers.CharField(),
        "position": serializers.IntegerField(
            required=False, help_text="With 7208 / 7105: the waiting request's place."
        ),
    },
)
LiveRequest = inline_serializer(
    "LiveRecordingRequest",
    {
        "role": serializers.CharField(required=False, help_text="Only `moderator` may."),
        "config": inline_serializer(
            "LiveRecordingConfig",
            {"url": serializers.URLField(required=False, help_text="http(s) viewer URL")},
            required=False,
        ),
    },
)
StreamingRequest = inline_serializer(
    "StreamingRequest",
    {
        "role": serializers.CharField(required=False, help_text="Only `moderator` may."),
        "config": inline_serializer(
            "StreamingConfig",
            {
                "rtmp_url": serializers.CharField(
                    help_text="rtmp:// or rtmps:// URL with the stream key, on a public host. "
                    "Stored encrypted; never shown or logged."
                )
            },
        ),
    },
)


def _recorder_view(kind: str, action: str, operation_id: str, summary: str, codes: str):
    """Start or stop a live recording or stream: these take a recorder slot,
    so a start may wait (202) and a stop may only remove it from waiting."""
    start = action == "start"
    live = kind == "live_recording"
    waiting = recorders.RULES[recorders.Kind(kind)]
    responses = {
        200: OpenApiResponse(
            RecorderEnvelope,
            description="Done (result 0)"
            + ("." if start else f", or removed from waiting (result {waiting.removed[0]})."),
        ),
        **error_responses(400, 401, 403, 404),
        409: OpenApiResponse(
            StillWaitingEnvelope if start else ErrorEnvelopeSerializer,
            description="Conflicts with the current state"
            + (f"; {waiting.repeated[0]} (with `position`) while the first start still waits."
               if start else "."),
        ),
    }  # fmt: skip
    if start:
        responses[202] = OpenApiResponse(
            RecorderEnvelope,
            description=f"No recorder free: the request waits (result {waiting.queued[0]}, "
            "`position`, `msg`); it starts as soon as one frees, or fails with "
            f"{waiting.failed[0]} (see GET /sessions/{{conf_num}} and the recording_state webhook).",
        )

    class RecorderView(APIView):
        parser_classes = [JSONParser]

        @extend_schema(
            operation_id=operation_id,
            summary=summary,
            description=f"Results: {codes}.",
            request=(LiveRequest if live else StreamingRequest) if start else RoleRequest,
            responses=responses,
        )
        def post(self, request, conf_num: str):
            data = json_object(request.data) if request.data else {}
            try:
                if start:
                    outcome = recorders.do_start_recorder(
                        request.auth, conf_num, kind, role=data.get("role"),
                        config=data.get("config"), acting_user=None,
                    )  # fmt: skip
                else:
                    outcome = recorders.do_stop_recorder(
                        request.auth, conf_num, kind, role=data.get("role"), acting_user=None
                    )
            except recorders.StillWaiting as exc:
                return Response(
                    {"result": exc.result, "error": exc.message, "position": exc.position},
                    status=status.HTTP_409_CONFLICT,
                )
            except sessions.IngestError as exc:
                raise ApiError(exc.result, exc.message, status=exc.status) from None
            body = session_data(outcome.session)
            if not outcome.result:
                return ok(body)
            body = {"result": outcome.result, "msg": outcome.message, **body}
            if outcome.position is not None:
                body["position"] = outcome.position
                return Response(body, status=status.HTTP_202_ACCEPTED)
            return Response(body)

    RecorderView.__name__ = RecorderView.__qualname__ = "".join(
        part.title() for part in operation_id.split("_")
    )
    return RecorderView.as_view()


START_CODES = (
    "5007 not a moderator, 5097 chat-only room, 5138 invalid config, 5122 start in progress, "
    "5139 already running, {queued} waiting for a recorder (HTTP 202), {repeated} repeated "
    "start while waiting; a waiting request that cannot start later fails with {failed}"
)
STOP_CODES = (
    "5008 not a moderator, 5097 chat-only room, 5140 not running, 5141 stop in progress, "
    "5122 still starting, {removed} was waiting and is removed from waiting"
)


def _codes(template: str, kind: str) -> str:
    rules = recorders.RULES[recorders.Kind(kind)]
    return template.format(
        queued=rules.queued[0], repeated=rules.repeated[0], failed=rules.failed[0],
        removed=rules.removed[0],
    )  # fmt: skip


live_recording_start = _recorder_view(
    "live_recording", "start", "ingest_live_recording_start", "Start live recording",
    _codes(START_CODES, "live_recording"),
)  # fmt: skip
live_recording_stop = _recorder_view(
    "live_recording", "stop", "ingest_live_recording_stop", "Stop live recording",
    _codes(STOP_CODES, "live_recording"),
)  # fmt: skip
streaming_start = _recorder_view(
    "streaming", "start", "ingest_streaming_start", "Start streaming (RTMP)",
    _codes(START_CODES, "streaming"),
)  # fmt: skip
streaming_stop = _recorder_view(
    "streaming", "stop", "ingest_streaming_stop", "Stop streaming",
    _codes(STOP_CODES, "streaming"),
)  # fmt: skip


class SessionView(APIView):
    @extend_schema(
        operation_id="ingest_session_get",
        summary="The session's state, with its live recording and stream",
        description="`live_recording` and `streaming` are {state: off|waiting|starting|on|"
        "stopping|failed, position, code}: `position` in the recorder queue while waiting "
        "(code 7207 / 7104); code 7080 / 7081 once a waiting request could not start.",
        responses={200: SessionEnvelope, **error_responses(401, 404)},
    )
    def get(self, request, conf_num: str):
        return ok(session_data(sessions.get_session(request.auth, conf_num)))
