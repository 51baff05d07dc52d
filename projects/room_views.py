"""The Rooms page: every member lists the project's rooms; admins create them."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import redirect, render

from .access import ROLE_NEEDED_MESSAGE, get_project_for
from .actions.rooms import do_create_room
from .audit import client_ip
from .context import project_context
from .models import Role
from .quotas import QuotaExceeded
from .room_forms import RoomForm

ROOMS_PER_PAGE = 50


@login_required
def rooms(request, app_id):
    project = get_project_for(request.user, app_id)
    can_create = project.membership.has_role(Role.ADMIN)
    form = RoomForm(request.POST or None) if can_create else None
    if request.method == "POST":
        if not can_create:
            raise PermissionDenied(ROLE_NEEDED_MESSAGE.format(role=Role.ADMIN.label.lower()))
        if form.is_valid():
            data = form.cleaned_data
            try:
                room = do_create_room(
                    project,
                    name=data["name"],
                    owner_ref=data["owner_ref"],
                    settings=data["settings"],
                    acting_user=request.user,
                    ip=client_ip(request),
                )
            except QuotaExceeded as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"Room “{room.name}” created (room_id {room.room_id}).")
                return redirect("projects:rooms", app_id=project.app_id)
    page = Paginator(project.rooms.all(), ROOMS_PER_PAGE).get_page(request.GET.get("page"))
    status = 400 if form is not None and form.errors else 200
    return render(
        request,
        "projects/rooms.html",
        project_context(request, project, page=page, form=form),
        status=status,
    )
