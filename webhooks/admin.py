"""Django admin for superusers. Secrets (the signing secret, the Basic
password) are never displayed or editable here."""

from django.contrib import admin

from .models import WebhookAttempt, WebhookEndpoint, WebhookMessage


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["project", "url", "enabled"]
    fields = ["project", "url", "enabled", "basic_username", "updated_at"]
    readonly_fields = ["updated_at"]


@admin.register(WebhookMessage)
class WebhookMessageAdmin(admin.ModelAdmin):
    list_display = ["msg_id", "event_type", "project", "state", "attempts", "created_at"]
    list_filter = ["state", "event_type"]
    readonly_fields = ["msg_id", "created_at"]


@admin.register(WebhookAttempt)
class WebhookAttemptAdmin(admin.ModelAdmin):
    list_display = ["message", "at", "status_code", "duration_ms", "error"]
