from django.db import models

from projects.models import Project


class InboxMessage(models.Model):
    """A webhook the demo project sent to the portal's own inbox. Only
    messages whose Standard Webhooks signature verified are kept."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    msg_id = models.CharField(max_length=64)  # the ``webhook-id`` header
    event_type = models.CharField(max_length=40, blank=True, default="")
    body = models.TextField()
    sent_at = models.DateTimeField()  # the signed ``webhook-timestamp``
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["project", "-received_at"])]

    def __str__(self) -> str:
        return f"{self.event_type} {self.msg_id}"
