"""Ingest API v1: the media server starts sessions, switches recording on and
off, uploads files and ends sessions. Views are thin: ``recordings.actions.sessions``
holds the rules; ``recordings.uploads`` streams file bodies to disk. Live
recording and streaming, which wait for a recorder, are ``recorder_api``."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.views import APIView

from portal.api import ApiError, ok
from projects.api import ErrorEnvelopeSerializer, error_responses, json_object

from .actions import recorders, sessions
from .uploads import FORM_OVERHEAD, StreamingUploadHandler, UploadTooLarge


def session_data(session) -> dict:
    return {
        "conf_num": session.conf_num,
        "room_id": session.room.room_id,
        "state": session.state,
        "recording": session.recording,
        **recorders.session_states(session),
    }


# Named in SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]: two enums of fields
# called "state".
RECORDER_STATES = ["off", "waiting", "starting", "on", "stopping", "failed"]
SESSION_STATES = ["live", "processing", "ready", "failed"]


def _recorder_state(name: str):
    return inline_serializer(
        name,
        {
            "state": serializers.ChoiceField(choices=RECORDER_STATES),
            "position": serializers.IntegerField(
                allow_null=True, help_text="Place in the recorder queue (1 = next) while waiting."
            ),
            "code": serializers.IntegerField(
                allow_null=True,
                help_text="While waiting 7207 (live recording) / 7104 (streaming); after a "
                "waiting request could not start (its session ended, or it waited longer than "
                "LIVE_RECORDING_MAX_WAIT_SECONDS) 7080 / 7081; otherwise null.",
            ),
        },
    )


SESSION_FIELDS = {
    "conf_num": serializers.CharField(),
    "room_id": serializers.CharField(),
    "state": serializers.ChoiceField(choices=SESSION_STATES),
    "recording": serializers.CharField(help_text="off, starting, on or stopping"),
    "live_recording": _recorder_state("LiveRecordingState"),
    "streaming": _recorder_state("StreamingState"),
}
SessionEnvelope = inline_serializer(
    "SessionEnvelope", {"result": serializers.IntegerField(help_text="0"), **SESSION_FIELDS}
)
RoleRequest = inline_serializer(
    "RecordingRequest",
    {"role": serializers.CharField(required=False, help_text="Only `moderator` may.")},
)
UploadRequest = inline_serializer(
    "FileUpload",
    {
        "type": serializers.ChoiceField(choices=list(sessions.UPLOAD_TYPES)),
        "file": serializers.FileField(),
        "participant": serializers.CharField(required=False),
    },
)
FileEnvelope = inline_serializer(
    "StoredFileEnvelope",
    {
        "result": serializers.IntegerField(help_text="0"),
        "file": inline_serializer(
            "StoredFile",
            {
                "name": serializers.CharField(help_text="Name in the session (made unique)."),
                "type": serializers.CharField(),
                "size": serializers.IntegerField(),
                "sha256": serializers.CharField(),
                "participant": serializers.CharField(),
            },
        ),
    },
)


def _run(call):
    try:
        return call()
    except sessions.IngestError as exc:
        raise ApiError(exc.result, exc.message, status=exc.status) from None


class SessionStartView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="ingest_session_start",
        summary="Start a session in a room (auto recording honoured)",
        request=None,
        responses={201: SessionEnvelope, **error_responses(401, 403, 404)},
    )
    def post(self, request, room_id: str):
        session = _run(lambda: sessions.do_start_session(request.auth, room_id, acting_user=None))
        return ok(session_data(session), status_code=status.HTTP_201_CREATED)


def _transition_view(service, operation_id: str, summary: str, codes: str):
    class TransitionView(APIView):
        parser_classes = [JSONParser]

        @extend_schema(
            operation_id=operation_id,
            summary=summary,
            description=f"Error results: {codes}.",
            request=RoleRequest,
            responses={
                200: SessionEnvelope,
                **error_responses(400, 401, 403, 404, 409),
            },
        )
        def post(self, request, conf_num: str):
            data = json_object(request.data) if request.data else {}
            session = _run(
                lambda: service(request.auth, conf_num, role=data.get("role"), acting_user=None)
            )
            return ok(session_data(session))

    TransitionView.__name__ = TransitionView.__qualname__ = "".join(
        part.title() for part in operation_id.split("_")
    )
    return TransitionView.as_view()


recording_start = _transition_view(
    sessions.do_start_recording, "ingest_recording_start", "Start recording",
    "5007 not a moderator, 5033 start in progress, 5034 already started",
)  # fmt: skip
recording_stop = _transition_view(
    sessions.do_stop_recording, "ingest_recording_stop", "Stop recording",
    "5008 not a moderator, 5035 stop in progress, 5036 not started",
)  # fmt: skip


# The client's Content-Type is never used: the server decides (recordings.admission).
UPLOAD_REFUSALS = {
    415: OpenApiResponse(
        ErrorEnvelopeSerializer,
        description="An individual or live upload is not audio or video in an allowed format "
        "(MP4/MOV, Matroska/WebM, Ogg, WAV, MP3, AAC); `error` names what was received. "
        "Nothing is kept.",
    ),
    422: OpenApiResponse(
        ErrorEnvelopeSerializer,
        description="Over a limit at the door (duration over MEDIA_MAX_SECONDS or longer than the "
        "session, frame over 4096x2160, a 17th individual recording) or chat/metadata that is "
        "not UTF-8 JSON; `error` names the limit. Nothing is kept.",
    ),
}


class FileUploadView(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="ingest_file_upload",
        summary="Upload one file of the session (streamed to the recording store)",
        request={"multipart/form-data": UploadRequest},
        responses={
            201: FileEnvelope,
            **error_responses(400, 401, 403, 404, 409, 413, 507),
            **UPLOAD_REFUSALS,
        },
    )
    def post(self, request, conf_num: str):
        session = sessions.get_session(request.auth, conf_num)
        _run(lambda: sessions.refuse_if_ended(session))
        # Refuse before reading the body when the project is already full.
        _run(lambda: sessions.refuse_if_over_storage_quota(request.auth))
        limit = settings.UPLOAD_MAX_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit + FORM_OVERHEAD:
            raise UploadTooLarge(limit)
        handler = StreamingUploadHandler(request._request, max_bytes=limit)
        request._request.upload_handlers = [handler]
        try:
            upload = request.FILES.get("file")
            if upload is None or handler.upload is None:
                raise ApiError(1001, "file: attach the recording in the `file` field", status=400)
            file_type = request.data.get("type", "")
            stored = _run(
                lambda: sessions.do_store_file(
                    request.auth,
                    conf_num,
                    file_type=file_type,
                    source_path=upload.temporary_file_path(),
                    original_name=upload.name,
                    size=upload.size,
                    sha256=upload.sha256,
                    participant=request.data.get("participant", ""),
                    acting_user=None,  # the media server, not a person
                )
            )
        finally:
            handler.discard()
        return ok(
            {
                "file": {
                    "name": stored.name,
                    "type": stored.type,
                    "size": stored.size,
                    "sha256": stored.sha256,
                    "participant": stored.participant,
                }
            },
            status_code=status.HTTP_201_CREATED,
        )


class SessionEndView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="ingest_session_end",
        summary="End the session: processing, webhooks and delivery follow",
        request=None,
        responses={
            200: SessionEnvelope,
            **error_responses(401, 404, 409),
        },
    )
    def post(self, request, conf_num: str):
        session = _run(lambda: sessions.do_end_session(request.auth, conf_num, acting_user=None))
        return ok(session_data(session))
