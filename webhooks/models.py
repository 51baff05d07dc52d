"""The webhook outbox. The tables keep the names they had when these models
lived in ``projects`` (``projects_webhook*``): the move to this app changed
the code, not the database (see migrations 0001 here and projects 0008)."""

from __future__ import annotations

import uuid

from django.db import models

from portal.fields import EncryptedTextField
from projects.models import Project


class WebhookEndpoint(models.Model):
    """Where a project's event notifications go (one per project)."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="webhook")
    url = models.URLField(max_length=500)
    enabled = models.BooleanField(default=True)
    # Standard Webhooks signing secret ("whsec_..."); needed in plain to sign,
    # so it is encrypted rather than hashed.
    secret = EncryptedTextField()
    basic_username = models.CharField(max_length=150, blank=True, default="")
    basic_password = EncryptedTextField(blank=True, default="")
    # The event types sent to this endpoint; empty = every event type.
    events = models.JSONField(default=list, blank=True)
    # Send "file-transfer" instead of "file_transfer", for receivers written
    # against EnableX's older notification docs.
    legacy_event_names = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "projects_webhookendpoint"

    def __str__(self) -> str:
        return f"webhook of {self.project}"

    def wants(self, event_type: str) -> bool:
        return not self.events or event_type in self.events


class WebhookMessage(models.Model):
    """One event to send; its id is the ``webhook-id`` kept across retries
    and manual resends so receivers can deduplicate."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        RETRY = "retry", "Waiting to retry"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="webhook_messages")
    msg_id = models.CharField(max_length=64, unique=True, default="", editable=False)
    event_type = models.CharField(max_length=40)
    payload = models.JSONField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set for events about one thing (e.g. "delivery:42:file_transfer") so the
    # same event is never queued twice.
    dedupe_key = models.CharField(max_length=120, null=True, blank=True, unique=True)

    class Meta:
        db_table = "projects_webhookmessage"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["project", "-created_at"]),
            models.Index(fields=["state", "next_attempt_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.msg_id}"

    def save(self, *args, **kwargs):
        if not self.msg_id:
            self.msg_id = f"msg_{uuid.uuid4().hex}"
        super().save(*args, **kwargs)


class WebhookAttempt(models.Model):
    message = models.ForeignKey(
        WebhookMessage, on_delete=models.CASCADE, related_name="attempt_log"
    )
    at = models.DateTimeField(auto_now_add=True)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True, default="")
    manual = models.BooleanField(default=False)

    class Meta:
        db_table = "projects_webhookattempt"
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"attempt {self.status_code or self.error} for {self.message_id}"

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
