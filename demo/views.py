from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe

from projects.access import get_project_for
from projects.context import project_context

from . import inbox
from .models import InboxMessage


@csrf_exempt  # a webhook sender has no CSRF token; the signature authenticates it
@require_POST
def receive(request, app_id: str):
    project = inbox.demo_project(app_id)
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not declared.isdigit() or int(declared) > inbox.MAX_BODY_BYTES:
        return HttpResponse("The webhook body is larger than the inbox accepts.", status=413)
    # Read at most one byte past the cap, whatever the header claimed.
    body = request.read(inbox.MAX_BODY_BYTES + 1)
    if len(body) > inbox.MAX_BODY_BYTES:
        return HttpResponse("The webhook body is larger than the inbox accepts.", status=413)
    try:
        inbox.do_receive_webhook(project, body, request.headers)
    except inbox.Refused as refused:
        return HttpResponseBadRequest(str(refused))
    return HttpResponse(status=204)


@require_safe
def inbox_page(request, app_id: str):
    inbox.demo_project(app_id)  # 404 unless the inbox is on and this is the demo project
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    project = get_project_for(request.user, app_id)
    received = [
        {"message": message, "pretty": inbox.pretty(message.body)}
        for message in InboxMessage.objects.filter(project=project)[: inbox.KEEP_MESSAGES]
    ]
    context = project_context(
        request,
        project,
        received=received,
        delivered=inbox.delivered_sessions(project),
        receive_url=inbox.inbox_url(project),
    )
    return render(request, "demo/inbox.html", context)
