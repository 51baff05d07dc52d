"""Settings → Webhook of a project, ``/projects/<app_id>/settings/webhook/``.

Included by ``projects.urls`` (at its root, so each route holds all its
arguments) without a namespace of its own: the URL names stay
``projects:webhook``, ``projects:webhook_send_test``, ... as they were before
webhooks became an app (templates and scripts use them)."""

from django.urls import path

from . import views

urlpatterns = [
    path("<str:app_id>/settings/webhook/", views.webhook_settings, name="webhook"),
    path(
        "<str:app_id>/settings/webhook/test/",
        views.webhook_send_test,
        name="webhook_send_test",
    ),
    path(
        "<str:app_id>/settings/webhook/rotate-secret/",
        views.webhook_rotate_secret,
        name="webhook_rotate_secret",
    ),
    path(
        "<str:app_id>/settings/webhook/messages/<str:msg_id>/resend/",
        views.webhook_resend,
        name="webhook_resend",
    ),
]
