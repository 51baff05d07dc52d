"""The project's audit log, for admins."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render

from .access import get_project_for
from .context import project_context
from .models import Role


@login_required
def audit_log(request, app_id):
    project = get_project_for(request.user, app_id, role=Role.ADMIN)
    events = project.audit_events.select_related("actor")
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    return render(request, "projects/audit.html", project_context(request, project, page=page))
