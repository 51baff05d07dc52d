"""Serializers of the Video API v2 rooms, and the envelopes the schema documents.

Request bodies are validated by ``projects.rooms.validate_room_settings`` and
``projects.room_services`` (the Rooms page uses the same rules); the request
serializers here describe them for the OpenAPI schema."""

from __future__ import annotations

from rest_framework import serializers

from .models import Room


class ErrorEnvelopeSerializer(serializers.Serializer):
    result = serializers.IntegerField(help_text="Non-zero error code.")
    error = serializers.CharField(help_text="What went wrong and how to fix it.")
    fields = serializers.DictField(
        child=serializers.CharField(),
        required=False,
        help_text='Per-field messages, e.g. {"settings.mode": "must be one of group, lecture"}.',
    )


class LiveRecordingSettingsSerializer(serializers.Serializer):
    auto_recording = serializers.BooleanField(required=False, default=False)
    url = serializers.URLField(required=False, allow_blank=True, help_text="http(s) viewer URL")


class RoomSettingsSerializer(serializers.Serializer):
    """Known keys; other scalar keys EnableX clients send (quality, participants,
    ...) are kept as given."""

    mode = serializers.ChoiceField(choices=["group", "lecture"], required=False, default="group")
    auto_recording = serializers.BooleanField(required=False, default=False)
    chat_only = serializers.BooleanField(required=False, default=False)
    live_recording = LiveRecordingSettingsSerializer(required=False)


class SipSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)


class RoomCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    owner_ref = serializers.CharField(max_length=200, required=False, allow_blank=True)
    settings = RoomSettingsSerializer(required=False)
    sip = SipSerializer(required=False, help_text="Accepted for compatibility; ignored.")


class RoomPatchSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    owner_ref = serializers.CharField(max_length=200, required=False, allow_blank=True)
    settings = RoomSettingsSerializer(required=False, help_text="Merged over the current settings.")


class RoomSerializer(serializers.ModelSerializer):
    settings = serializers.JSONField()
    created = serializers.DateTimeField(source="created_at", read_only=True)

    class Meta:
        model = Room
        fields = ["room_id", "name", "owner_ref", "settings", "created"]


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


class ResultSerializer(serializers.Serializer):
    result = serializers.IntegerField(help_text="0")
