from __future__ import annotations

from django.db import models

from portal.fields import EncryptedJSONField
from projects.models import Project
from recordings.models import RecordingFile, Session

from .destinations import KIND_CHOICES

# The file types a destination may choose are the recording store's own.
FileType = RecordingFile.Type


class DeliveryDestination(models.Model):
    """One place a project's recordings are pushed to, with its file types."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="destinations")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=KIND_CHOICES)
    enabled = models.BooleanField(default=True)
    file_types = models.JSONField(default=list)
    write_manifest = models.BooleanField(default=True)
    # Non-secret settings (host, bucket, root, pinned fingerprint, ...)
    config = models.JSONField(default=dict, blank=True)
    # Passwords, keys and tokens; encrypted at rest, never rendered.
    secrets = EncryptedJSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project", "name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="unique_destination_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def merged_config(self) -> dict:
        secrets: dict = self.secrets or {}  # type: ignore[assignment]
        return {**(self.config or {}), **secrets}


class Delivery(models.Model):
    """The push of one session to one destination. The row is the truth; the
    task queue only wakes workers."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        # Every ready file is verified, but processing may still add some:
        # not announced yet (the hand-off wakes it when files_final is set).
        WAITING = "waiting", "Uploaded, waiting for processing"
        RETRY_WAIT = "retry_wait", "Waiting to retry"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="deliveries")
    destination = models.ForeignKey(
        DeliveryDestination, on_delete=models.CASCADE, related_name="deliveries"
    )
    state = models.CharField(max_length=12, choices=State.choices, default=State.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=64, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    bytes_total = models.BigIntegerField(default=0)
    bytes_sent = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    log = models.JSONField(default=list, blank=True)
    # Bumped by a person's Redeliver (or files added to a delivered
    # delivery), so its file_transfer is a new event rather than a duplicate.
    generation = models.PositiveIntegerField(default=1)
    # Set by the hand-off once the session can get no more files (processing
    # finished or failed): only then is the delivery announced.
    files_final = models.BooleanField(default=False)
    # Files of the destination's types the session will never have, as
    # [{type, reason}] (file_transfer's ``missing``).
    missing = models.JSONField(default=list, blank=True)
    manifest_written_at = models.DateTimeField(null=True, blank=True)
    webhook_sent_at = models.DateTimeField(null=True, blank=True)
    # Average bytes per second of the current or last run.
    speed = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["session", "destination"], name="unique_delivery_per_destination"
            ),
        ]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="delivery_due"),
            models.Index(fields=["state", "lease_expires_at"], name="delivery_lease"),
        ]

    def __str__(self) -> str:
        return f"delivery of {self.session} to {self.destination}"

    @property
    def percent(self) -> int:
        if not self.bytes_total:
            return 100 if self.state == self.State.DELIVERED else 0
        return min(100, int(self.bytes_sent * 100 / self.bytes_total))


class DeliveredFile(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        UPLOADING = "uploading", "Uploading"
        VERIFIED = "verified", "Verified"
        FAILED = "failed", "Failed"

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="files")
    recording_file = models.ForeignKey(
        RecordingFile, on_delete=models.CASCADE, related_name="deliveries"
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    remote_path = models.CharField(max_length=1000, blank=True, default="")
    bytes_sent = models.BigIntegerField(default=0)
    seconds = models.FloatField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    # What a half-sent upload left for the next run (destinations.base.ResumePoint):
    # an S3 UploadId, a Drive session URI (a bearer capability, hence encrypted), ...
    resume_state = EncryptedJSONField(default=dict, blank=True)

    class Meta:
        ordering = ["delivery", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["delivery", "recording_file"], name="unique_file_per_delivery"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.recording_file.name} in {self.delivery}"
