"""Serializers of the Video API v2 rooms, and the envelopes the schema documents.

Request bodies are validated by ``projects.rooms.validate_room_settings`` and
``projects.actions.rooms`` (the Rooms page uses the same rules); the request
serializers here describe them for the OpenAPI schema."""

from __future__ import annotations

import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from portal.api import enablex_time

from .models import Room


class ErrorEnvelopeSerializer(serializers.Serializer):
    result = serializers.IntegerField(help_text="Non-zero error code.")
    error = serializers.CharField(help_text="What went wrong.")
    desc = serializers.CharField(help_text="Details: how to fix it.")
    fields = serializers.DictField(
        child=serializers.CharField(),
        required=False,
        help_text='Per-field messages, e.g. {"settings.mode": "must be one of group, lecture"}.',
    )


class LiveRecordingSettingsSerializer(serializers.Serializer):
    auto_recording = serializers.BooleanField(required=False, default=False)
    url = serializers.URLField(required=False, allow_blank=True, help_text="http(s) viewer URL")


class RoleBasedRecordingSerializer(serializers.Serializer):
    # One enum for both roles would need an ENUM_NAME_OVERRIDES entry; the text says it.
    moderator = serializers.CharField(required=False, help_text="audio or audiovideo (default)")
    participant = serializers.CharField(required=False, help_text="audio or audiovideo (default)")


class RoomSettingsSerializer(serializers.Serializer):
    """Known keys; other scalar keys EnableX clients send (quality, participants,
    ...) are kept as given."""

    mode = serializers.ChoiceField(choices=["group", "lecture"], required=False, default="group")
    auto_recording = serializers.BooleanField(required=False, default=False)
    chat_only = serializers.BooleanField(required=False, default=False)
    live_recording = LiveRecordingSettingsSerializer(required=False)
    role_based_recording = RoleBasedRecordingSerializer(required=False)


class SipSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "number"}]})
class OwnerRefField(serializers.Field):
    """A string or a number, echoed as the client sent it."""

    def to_representation(self, room):
        return json.loads(room.owner_ref) if room.owner_ref_is_number else room.owner_ref


class RoomCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    owner_ref = OwnerRefField(required=False)
    settings = RoomSettingsSerializer(required=False)
    sip = SipSerializer(required=False, help_text="Kept and echoed as given.")
    data = serializers.DictField(required=False, help_text="Your own keys, kept and echoed.")


class RoomPatchSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    owner_ref = OwnerRefField(required=False)
    settings = RoomSettingsSerializer(required=False, help_text="Merged over the current settings.")
    sip = SipSerializer(required=False, help_text="Replaces the stored object.")
    data = serializers.DictField(required=False, help_text="Replaces the stored object.")


class RoomSerializer(serializers.ModelSerializer):
    owner_ref = OwnerRefField(source="*", read_only=True)
    settings = serializers.JSONField()
    sip = serializers.JSONField()
    data = serializers.JSONField()
    created = serializers.SerializerMethodField(help_text="YYYY-MM-DDTHH:MM:SS.mmmZ (UTC)")

    class Meta:
        model = Room
        fields = ["room_id", "name", "owner_ref", "settings", "sip", "data", "created"]

    @extend_schema_field(OpenApiTypes.STR)
    def get_created(self, room) -> str | None:
        return enablex_time(room.created_at)


class RoomEnvelopeSerializer(serializers.Serializer):
    result = serializers.IntegerField(help_text="0")
    room = RoomSerializer()


class RoomListEnvelopeSerializer(serializers.Serializer):
    result = serializers.IntegerField(help_text="0")
    rooms = RoomSerializer(many=True)
    total = serializers.IntegerField(help_text="Rooms matching the query.")
    page = serializers.IntegerField()
    per_page = serializers.IntegerField()
    next = serializers.CharField(allow_null=True, help_text="URL of the next page or null.")
