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


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["at", "project", "action", "actor", "ip_address"]
    list_filter = ["action"]
    readonly_fields = ["project", "actor", "action", "detail", "ip_address", "at"]
