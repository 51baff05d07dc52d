from __future__ import annotations

import secrets

from django.db import models
from django.urls import reverse

from portal.fields import EncryptedJSONField
from projects.models import Project, Room


def new_conf_num() -> str:
    return str(secrets.randbelow(9 * 10**11) + 10**11)


class Session(models.Model):
    class State(models.TextChoices):
        LIVE = "live", "Live"
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Processing failed"

    class RecordingState(models.TextChoices):
        OFF = "off", "Off"
        STARTING = "starting", "Starting"
        ON = "on", "On"
        STOPPING = "stopping", "Stopping"
        # Live recording and streaming only: waiting for a recorder slot, or
        # a waiting request that could not start (recorders.FAILED_CODE).
        WAITING = "waiting", "Waiting for a recorder"
        FAILED = "failed", "Failed to start"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="sessions")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="sessions")
    conf_num = models.CharField(max_length=20, unique=True, default=new_conf_num, editable=False)
    state = models.CharField(max_length=12, choices=State.choices, default=State.LIVE)
    recording = models.CharField(
        max_length=10, choices=RecordingState.choices, default=RecordingState.OFF
    )
    live_recording = models.CharField(
        max_length=10, choices=RecordingState.choices, default=RecordingState.OFF
    )
    live_recording_config = models.JSONField(default=dict, blank=True)
    streaming = models.CharField(
        max_length=10, choices=RecordingState.choices, default=RecordingState.OFF
    )
    started_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    processing_error = models.TextField(blank=True, default="")
    # Started processing runs; after MAX_PROCESSING_ATTEMPTS the session fails
    # instead of being queued again (recordings.processing).
    processing_attempts = models.PositiveSmallIntegerField(default=0)
    duration_seconds = models.FloatField(null=True, blank=True)
    participant_count = models.PositiveIntegerField(default=0)
    total_size = models.BigIntegerField(default=0)
    # Participants read from the metadata log for the CDR (recordings.call_log);
    # null until the CDR API first reads it.
    call_log = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["project", "-started_at", "-id"], name="session_project_start"),
            models.Index(fields=["room", "-started_at", "-id"], name="session_room_start"),
            # Cover the report's per-day chart (count and size per day of a range).
            models.Index(
                fields=["project", "started_at", "total_size"], name="session_project_day"
            ),
            models.Index(fields=["room", "started_at", "total_size"], name="session_room_day"),
        ]

    def __str__(self) -> str:
        return f"session {self.conf_num}"

    @property
    def is_ended(self) -> bool:
        return self.ended_at is not None


class RecordingFile(models.Model):
    class Type(models.TextChoices):
        INDIVIDUAL = "individual", "Individual recording"
        LIVE = "live", "Live recording"
        TRANSCODED = "transcoded", "Transcoded"
        CHAT = "chat", "Chat data"
        METADATA = "metadata", "Metadata"

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="files")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="recording_files")
    type = models.CharField(max_length=12, choices=Type.choices)
    name = models.CharField(max_length=255)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    # Name inside the "recordings" storage (STORAGES["recordings"]).
    storage_path = models.CharField(max_length=500)
    participant = models.CharField(max_length=200, blank=True, default="")
    content_type = models.CharField(max_length=100, blank=True, default="")
    duration_seconds = models.FloatField(null=True, blank=True)
    poster_path = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when retention removed the bytes; the row stays so pages can say so.
    expired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["session", "type", "name"]
        constraints = [
            models.UniqueConstraint(fields=["session", "name"], name="unique_file_name_in_session"),
        ]
        indexes = [
            models.Index(fields=["project", "created_at"], name="file_project_created"),
            models.Index(fields=["expired_at", "created_at"], name="file_retention"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_type_display()})"

    @property
    def is_expired(self) -> bool:
        return self.expired_at is not None

    @property
    def url_path(self) -> str:
        return reverse(
            "recordings:protected_file",
            args=[self.project.app_id, self.session.room.room_id, self.session.conf_num, self.name],
        )

    @property
    def public_url(self) -> str:
        """Stable URL guarded by the project's recording credentials."""
        from .links import files_origin  # links reads these models

        return files_origin() + self.url_path


class RecorderPool(models.Model):
    """The one row every hand-out of a recorder slot locks (select_for_update),
    so starts, stops and session ends in any web process or worker see each
    other's slots and queue. Slots in use are the ACTIVE RecorderRequests."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)

    def __str__(self) -> str:
        return "recorder pool"


class RecorderRequest(models.Model):
    """A live recording or stream of a session from its start request to its
    end: waiting for a slot, holding one (ACTIVE), or finished."""

    class Kind(models.TextChoices):
        LIVE_RECORDING = "live_recording", "Live recording"
        STREAMING = "streaming", "Streaming"

    class State(models.TextChoices):
        WAITING = "waiting", "Waiting"
        ACTIVE = "active", "Holding a recorder"
        STOPPED = "stopped", "Stopped"
        CANCELLED = "cancelled", "Removed from waiting"
        FAILED = "failed", "Could not start"

    OPEN_STATES = (State.WAITING, State.ACTIVE)

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="recorder_requests")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="recorder_requests")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    state = models.CharField(max_length=10, choices=State.choices, default=State.WAITING)
    # The streaming target (rtmp_url with its key) is a secret of the tenant.
    config = EncryptedJSONField(default=dict, blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    code = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # One live recording and one stream per session at a time, even if
            # two start requests race past every check.
            models.UniqueConstraint(
                fields=["session", "kind"],
                condition=models.Q(state__in=["waiting", "active"]),
                name="one_open_recorder_request",
            ),
        ]
        indexes = [models.Index(fields=["state", "id"], name="recorder_request_queue")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.session_id} ({self.state})"
