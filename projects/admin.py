"""Django admin for superusers. Secrets (hashes, encrypted values) are never
displayed or editable here."""

from django.contrib import admin

from .models import (
    AuditEvent,
    Invitation,
    Membership,
    Project,
    RecordingCredentials,
    Room,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "app_id", "created_at"]
    search_fields = ["name", "app_id"]
    exclude = ["app_key_hash"]
    readonly_fields = ["app_id", "created_at"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["project", "user", "role"]
    list_filter = ["role"]
    autocomplete_fields = ["user", "project"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["identifier", "project", "role", "invited_by", "created_at"]
    search_fields = ["identifier"]
    list_select_related = ["project", "invited_by"]


@admin.register(RecordingCredentials)
class RecordingCredentialsAdmin(admin.ModelAdmin):
    list_display = ["project", "username", "changed_at"]
    fields = ["project", "username", "changed_at", "changed_by"]
    readonly_fields = ["project", "username", "changed_at", "changed_by"]


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["name", "room_id", "project", "created_at"]
    search_fields = ["name", "room_id", "owner_ref"]
    list_select_related = ["project"]


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


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["at", "project", "action", "actor", "ip_address"]
    list_filter = ["action"]
    readonly_fields = ["project", "actor", "action", "detail", "ip_address", "at"]
