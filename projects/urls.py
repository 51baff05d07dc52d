from django.urls import path

from . import room_views, security_views, views, webhook_views

app_name = "projects"

urlpatterns = [
    path("", views.project_list, name="list"),
    path("new/", views.project_create, name="create"),
    path("<str:app_id>/", views.project_detail, name="detail"),
    path("<str:app_id>/app-key/", views.regenerate_app_key, name="regenerate_app_key"),
    path("<str:app_id>/rooms/", room_views.rooms, name="rooms"),
    path(
        "<str:app_id>/settings/access/",
        security_views.recording_access_control,
        name="access",
    ),
    path("<str:app_id>/members/", security_views.members, name="members"),
    path(
        "<str:app_id>/members/invitations/<int:invitation_id>/cancel/",
        security_views.invitation_cancel,
        name="invitation_cancel",
    ),
    path(
        "<str:app_id>/members/<int:membership_id>/role/",
        security_views.member_role,
        name="member_role",
    ),
    path(
        "<str:app_id>/members/<int:membership_id>/remove/",
        security_views.member_remove,
        name="member_remove",
    ),
    path("<str:app_id>/audit/", security_views.audit_log, name="audit"),
    path("<str:app_id>/settings/webhook/", webhook_views.webhook_settings, name="webhook"),
    path(
        "<str:app_id>/settings/webhook/test/",
        webhook_views.webhook_send_test,
        name="webhook_send_test",
    ),
    path(
        "<str:app_id>/settings/webhook/rotate-secret/",
        webhook_views.webhook_rotate_secret,
        name="webhook_rotate_secret",
    ),
    path(
        "<str:app_id>/settings/webhook/messages/<str:msg_id>/resend/",
        webhook_views.webhook_resend,
        name="webhook_resend",
    ),
]
