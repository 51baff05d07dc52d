from django.contrib import admin

from .models import RecordingFile, Session

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
