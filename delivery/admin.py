from django.contrib import admin

from .models import DeliveredFile, Delivery, DeliveryDestination


@admin.register(DeliveryDestination)
class DeliveryDestinationAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "project", "enabled"]
    list_filter = ["kind", "enabled"]
    # ``secrets`` is deliberately left out: it is never shown or edited here.
    fields = ["project", "name", "kind", "enabled", "file_types", "write_manifest", "config"]


class DeliveredFileInline(admin.TabularInline):
    model = DeliveredFile
    extra = 0
    readonly_fields = ["recording_file", "state", "remote_path", "bytes_sent", "verified_at", "error"]
    # resume_state may hold a Drive upload session URI (a bearer capability).
    exclude = ["resume_state"]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["session", "destination", "state", "attempts", "bytes_sent", "bytes_total"]
    list_filter = ["state"]
    inlines = [DeliveredFileInline]


@admin.register(DeliveredFile)
class DeliveredFileAdmin(admin.ModelAdmin):
    list_display = ["recording_file", "delivery", "state", "bytes_sent", "verified_at"]
    list_filter = ["state"]
    list_select_related = ["recording_file", "delivery"]
    readonly_fields = ["remote_path", "verified_at"]
    exclude = ["resume_state"]  # see DeliveredFileInline
