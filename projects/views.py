from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from .access import get_project_for, projects_of
from .actions.projects import do_create_project, do_regenerate_app_key
from .audit import client_ip
from .context import project_context
from .forms import ProjectForm
from .models import Role


@login_required
def project_list(request):
    projects = projects_of(request.user).prefetch_related("memberships")
    return render(request, "projects/list.html", {"projects": projects})


@login_required
def project_create(request):
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        created = do_create_project(
            form.cleaned_data["name"], acting_user=request.user, ip=client_ip(request)
        )
        project = get_project_for(request.user, created.project.app_id)
        # Rendered, not redirected: the app key is shown this once and must
        # not travel through the session or a message cookie.
        return render(
            request,
            "projects/created.html",
            project_context(request, project, created=created),
        )
    return render(request, "projects/create.html", {"form": form})


@login_required
def project_detail(request, app_id):
    project = get_project_for(request.user, app_id)
    return render(request, "projects/detail.html", project_context(request, project))


@login_required
@require_POST
def regenerate_app_key(request, app_id):
    project = get_project_for(request.user, app_id, role=Role.OWNER)
    app_key = do_regenerate_app_key(project, acting_user=request.user, ip=client_ip(request))
    return render(
        request, "projects/app_key.html", project_context(request, project, app_key=app_key)
    )


def home(request):
    return redirect("projects:list")
