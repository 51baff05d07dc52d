"""Settings → Webhook: endpoint form, one-time secret display, test event,
attempt log and resend."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from projects.access import get_project_for
from projects.audit import client_ip
from projects.context import project_context
from projects.models import Role

from .actions import (
    do_configure_webhook,
    do_resend_webhook_message,
    do_rotate_webhook_secret,
    do_send_test_webhook,
)
from .forms import WebhookForm
from .models import WebhookEndpoint, WebhookMessage

LOG_LENGTH = 25


def _render(request, project, form, *, new_secret: str | None = None, status: int = 200):
    log = project.webhook_messages.prefetch_related("attempt_log")[:LOG_LENGTH]
    context = project_context(
        request,
        project,
        form=form,
        endpoint=WebhookEndpoint.objects.filter(project=project).first(),
        webhook_log=log,
        new_secret=new_secret,
    )
    return render(request, "webhooks/settings.html", context, status=status)


@login_required
def webhook_settings(request, app_id):
    project = get_project_for(request.user, app_id, role=Role.ADMIN)
    endpoint = WebhookEndpoint.objects.filter(project=project).first()
    form = WebhookForm(request.POST or None, endpoint=endpoint)
    if request.method == "POST":
        if not form.is_valid():
            return _render(request, project, form, status=400)
        change = do_configure_webhook(
            project,
            url=form.cleaned_data["url"],
            enabled=form.cleaned_data["enabled"],
            basic_username=form.cleaned_data["basic_username"],
            basic_password=form.password_change(),
            events=form.cleaned_data["events"],
            legacy_event_names=form.cleaned_data["legacy_event_names"],
            acting_user=request.user,
            ip=client_ip(request),
        )
        if change.new_secret:
            # Rendered, not redirected: the secret is shown this once and
            # must not travel through the session or a message cookie.
            form = WebhookForm(endpoint=change.endpoint)
            return _render(request, project, form, new_secret=change.new_secret)
        messages.success(
            request, "Webhook settings saved." if change.changed else "Nothing changed."
        )
        return redirect("projects:webhook", app_id=project.app_id)
    return _render(request, project, form)


@login_required
@require_POST
def webhook_rotate_secret(request, app_id):
    project = get_project_for(request.user, app_id, role=Role.ADMIN)
    if not WebhookEndpoint.objects.filter(project=project).exists():
        messages.error(request, "Save a webhook URL first; its secret is generated then.")
        return redirect("projects:webhook", app_id=project.app_id)
    secret = do_rotate_webhook_secret(project, acting_user=request.user, ip=client_ip(request))
    endpoint = WebhookEndpoint.objects.get(project=project)
    return _render(request, project, WebhookForm(endpoint=endpoint), new_secret=secret)


def _report(request, logged, what: str) -> None:
    if logged is None:
        messages.error(request, f"{what} is being sent right now; try again in a moment.")
    elif logged.ok:
        messages.success(
            request, f"{what} delivered: HTTP {logged.status_code} in {logged.duration_ms} ms."
        )
    else:
        messages.error(request, f"{what} failed: {logged.error}")


@login_required
@require_POST
def webhook_send_test(request, app_id):
    project = get_project_for(request.user, app_id, role=Role.ADMIN)
    if not WebhookEndpoint.objects.filter(project=project).exists():
        messages.error(request, "Save a webhook URL first, then send a test event.")
    else:
        logged = do_send_test_webhook(project, acting_user=request.user, ip=client_ip(request))
        _report(request, logged, "Test event")
    return redirect("projects:webhook", app_id=project.app_id)


@login_required
@require_POST
def webhook_resend(request, app_id, msg_id):
    project = get_project_for(request.user, app_id, role=Role.ADMIN)
    message = get_object_or_404(WebhookMessage, project=project, msg_id=msg_id)
    logged = do_resend_webhook_message(message, acting_user=request.user, ip=client_ip(request))
    _report(request, logged, f"The {message.event_type} event")
    return redirect("projects:webhook", app_id=project.app_id)
