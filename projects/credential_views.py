"""Settings → Recording Access Control: staff change the HTTP Basic password
guarding the project's recording files."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render

from .access import get_project_for
from .access_control import access_control_available
from .actions.projects import do_change_recording_password
from .audit import client_ip
from .context import project_context
from .forms import RecordingPasswordForm
from .models import Role


@login_required
def recording_access_control(request, app_id):
    project = get_project_for(request.user, app_id, role=Role.STAFF)
    if not access_control_available(project):
        raise Http404("Recording Access Control appears once the project has a recording.")
    form = RecordingPasswordForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        do_change_recording_password(
            project,
            form.cleaned_data["new_password"],
            acting_user=request.user,
            ip=client_ip(request),
        )
        messages.success(
            request, "The recording password was changed. The old one no longer works."
        )
        return redirect("projects:access", app_id=project.app_id)
    credentials = project.recording_credentials
    return render(
        request,
        "projects/access_control.html",
        project_context(request, project, form=form, credentials=credentials),
    )
