"""Video API: rooms (wire-compatible subset of EnableX's server API), served
under /video/v2/ and /v1/."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from portal.api import ApiError, ok

from .actions.rooms import RoomInUse, do_create_room, do_delete_room, do_update_room
from .audit import client_ip
from .models import Room
from .quotas import QuotaExceeded
from .serializers import (
    ErrorEnvelopeSerializer,
    RoomCreateSerializer,
    RoomEnvelopeSerializer,
    RoomListEnvelopeSerializer,
    RoomPatchSerializer,
    RoomSerializer,
)

# EnableX clients read ``rooms`` as the whole list; up to this many rooms come
# in one answer, more through ``page``.
PER_PAGE_MAX = 1000
PER_PAGE_DEFAULT = PER_PAGE_MAX
ROOM_KEYS = ("name", "owner_ref", "settings", "data", "sip")

ERROR_DESCRIPTIONS = {
    400: "Malformed JSON or an invalid field (`fields` names it).",
    405: "The route does not take this method.",
    500: "The portal failed; the failure is logged.",
    401: "Missing or wrong APP_ID:APP_KEY.",
    403: "Not allowed, e.g. a project quota (rooms, stored bytes, live sessions) is reached.",
    404: "No such room or session in this project.",
    409: "Conflicts with the current state.",
    413: "Upload larger than the configured maximum.",
    429: "Too many failed APP_KEY checks for this APP_ID from this address; retry after "
    "`Retry-After` seconds.",
    507: "The recording store is full.",
}


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """Schema entries for the error envelope under the given HTTP statuses.
    Wherever a wrong key is possible (401), so is the failure throttle (429)."""
    if 401 in codes and 429 not in codes:
        codes = (*codes, 429)
    return {
        code: OpenApiResponse(ErrorEnvelopeSerializer, description=ERROR_DESCRIPTIONS[code])
        for code in codes
    }


def json_object(data) -> dict:
    if not isinstance(data, dict):
        raise ApiError(1001, "The request body must be a JSON object", status=400)
    return data


def invalid(exc: DjangoValidationError) -> serializers.ValidationError:
    detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
    return serializers.ValidationError(detail)


def _int_param(request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise serializers.ValidationError({name: "must be a whole number"}) from None
    if not low <= value <= high:
        raise serializers.ValidationError({name: f"must be between {low} and {high}"})
    return value


class RoomListView(APIView):
    @extend_schema(
        operation_id="rooms_list",
        summary="List the project's rooms",
        parameters=[
            OpenApiParameter("name", str, description="Only rooms with exactly this name."),
            OpenApiParameter("page", int, description="1-based page number (default 1)."),
            OpenApiParameter(
                "per_page",
                int,
                description=f"Rooms per page (default {PER_PAGE_DEFAULT}, at most {PER_PAGE_MAX}).",
            ),
        ],
        responses={200: RoomListEnvelopeSerializer, **error_responses(400, 401)},
        description=f"All rooms (newest first) up to {PER_PAGE_MAX}; more through `page`.",
    )
    def get(self, request):
        rooms = Room.objects.filter(project=request.auth).order_by("-created_at", "-id")
        if name := request.query_params.get("name"):
            rooms = rooms.filter(name=name)
        page = _int_param(request, "page", 1, 1, 10**6)
        per_page = _int_param(request, "per_page", PER_PAGE_DEFAULT, 1, PER_PAGE_MAX)
        total = rooms.count()
        start = (page - 1) * per_page
        items = rooms[start : start + per_page]
        next_url = None
        if start + per_page < total:
            query = request.query_params.copy()
            query["page"] = str(page + 1)
            next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        return ok(
            {
                "rooms": RoomSerializer(items, many=True).data,
                "total": total,
                "page": page,
                "per_page": per_page,
                "next": next_url,
            }
        )

    @extend_schema(
        operation_id="rooms_create",
        summary="Create a room",
        description="Answers 200, as EnableX does (its sample servers read only the body).",
        request=RoomCreateSerializer,
        responses={200: RoomEnvelopeSerializer, **error_responses(400, 401, 403)},
    )
    def post(self, request):
        data = json_object(request.data)
        try:
            room = do_create_room(
                request.auth,
                name=data.get("name"),
                owner_ref=data.get("owner_ref", ""),
                settings=data.get("settings"),
                data=data.get("data"),
                sip=data.get("sip"),
                acting_user=None,  # the app, by its APP_KEY
                ip=client_ip(request),
            )
        except DjangoValidationError as exc:
            raise invalid(exc) from None
        except QuotaExceeded as exc:
            raise ApiError(exc.result, exc.message, status=exc.status) from None
        return ok({"room": RoomSerializer(room).data})


class RoomDetailView(APIView):
    def get_room(self, request, room_id: str) -> Room:
        # Rooms of other projects (and deleted rooms) are 404 like unknown ones.
        room = Room.objects.filter(project=request.auth, room_id=room_id).first()
        if room is None:
            raise ApiError(1004, f"No room {room_id!r} in this project", status=404)
        return room

    @extend_schema(
        operation_id="rooms_retrieve",
        summary="Get a room",
        responses={200: RoomEnvelopeSerializer, **error_responses(401, 404)},
    )
    def get(self, request, room_id: str):
        return ok({"room": RoomSerializer(self.get_room(request, room_id)).data})

    @extend_schema(
        operation_id="rooms_update",
        summary="Change a room (settings merge over the current ones)",
        request=RoomPatchSerializer,
        responses={200: RoomEnvelopeSerializer, **error_responses(400, 401, 404)},
    )
    def patch(self, request, room_id: str):
        room = self.get_room(request, room_id)
        data = json_object(request.data)
        changes = {key: data[key] for key in ROOM_KEYS if key in data}
        try:
            room = do_update_room(room, changes, acting_user=None, ip=client_ip(request))
        except DjangoValidationError as exc:
            raise invalid(exc) from None
        return ok({"room": RoomSerializer(room).data})

    @extend_schema(
        operation_id="rooms_replace",
        summary="Change a room (same as PATCH: clients of EnableX update with PUT)",
        request=RoomPatchSerializer,
        responses={200: RoomEnvelopeSerializer, **error_responses(400, 401, 404)},
    )
    def put(self, request, room_id: str):
        return self.patch(request, room_id)

    @extend_schema(
        operation_id="rooms_destroy",
        summary="Delete a room (refused while a session is in progress in it)",
        description="Recordings of the room's past sessions stay in the report, "
        "the Archive API and the CDR.",
        responses={200: RoomEnvelopeSerializer, **error_responses(401, 404, 409)},
    )
    def delete(self, request, room_id: str):
        room = self.get_room(request, room_id)
        data = RoomSerializer(room).data
        try:
            do_delete_room(room, acting_user=None, ip=client_ip(request))
        except RoomInUse as exc:
            raise ApiError(1009, str(exc), status=409) from None
        return ok({"room": data})
