"""Settings → Webhook, under ``projects/<app_id>/settings/webhook/``.

Included by ``projects.urls`` without a namespace of its own, so the URL
names stay ``projects:webhook``, ``projects:webhook_send_test``, ... as
they were before webhooks became an app (they are used in templates and
by scripts)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.webhook_settings, name="webhook"),
    path("test/", views.webhook_send_test, name="webhook_send_test"),
    path("rotate-secret/", views.webhook_rotate_secret, name="webhook_rotate_secret"),
    path("messages/<str:msg_id>/resend/", views.webhook_resend, name="webhook_resend"),
]
