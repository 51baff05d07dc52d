from django.contrib import admin

from .models import RecorderPool, RecorderRequest, RecordingFile, Session

FILE_FIELDS = ("type", "name", "size", "sha256", "participant", "expired_at")


class RecordingFileInline(admin.TabularInline):
    model = RecordingFile
    extra = 0
    fields = FILE_FIELDS
    readonly_fields = FILE_FIELDS


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ["conf_num", "room", "project", "state", "started_at", "ended_at"]
    list_filter = ["state"]
    search_fields = ["conf_num", "room__room_id"]
    list_select_related = ["room", "project"]
    inlines = [RecordingFileInline]


@admin.register(RecordingFile)
class RecordingFileAdmin(admin.ModelAdmin):
    list_display = ["name", "type", "session", "size", "created_at", "expired_at"]
    list_filter = ["type"]
    search_fields = ["name", "session__conf_num"]
    list_select_related = ["session"]


@admin.register(RecorderRequest)
class RecorderRequestAdmin(admin.ModelAdmin):
    """The recorder queue, read-only: changes go through recordings.actions.recorders,
    which keeps slots and sessions consistent. The streaming target is secret."""

    list_display = ["id", "kind", "state", "session", "project", "requested_at", "started_at",
                    "finished_at", "code"]  # fmt: skip
    list_filter = ["state", "kind"]
    search_fields = ["session__conf_num"]
    list_select_related = ["session", "project"]
    fields = readonly_fields = (
        "kind", "state", "session", "project", "requested_at", "started_at", "finished_at", "code",
    )  # fmt: skip

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(RecorderPool)
class RecorderPoolAdmin(admin.ModelAdmin):
    """The row the recorder actions lock; nothing to edit."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
