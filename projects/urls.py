from django.urls import include, path

from . import audit_views, credential_views, member_views, room_views, views

app_name = "projects"

urlpatterns = [
    path("", views.project_list, name="list"),
    path("new/", views.project_create, name="create"),
    path("<str:app_id>/", views.project_detail, name="detail"),
    path("<str:app_id>/app-key/", views.regenerate_app_key, name="regenerate_app_key"),
    path("<str:app_id>/rooms/", room_views.rooms, name="rooms"),
    path(
        "<str:app_id>/settings/access/",
        credential_views.recording_access_control,
        name="access",
    ),
    path("<str:app_id>/members/", member_views.members, name="members"),
    path(
        "<str:app_id>/members/invitations/<int:invitation_id>/cancel/",
        member_views.invitation_cancel,
        name="invitation_cancel",
    ),
    path(
        "<str:app_id>/members/<int:membership_id>/role/",
        member_views.member_role,
        name="member_role",
    ),
    path(
        "<str:app_id>/members/<int:membership_id>/remove/",
        member_views.member_remove,
        name="member_remove",
    ),
    path("<str:app_id>/audit/", audit_views.audit_log, name="audit"),
    # Settings → Webhook (projects:webhook, ...), from the webhooks app.
    path("", include("webhooks.urls")),
]
