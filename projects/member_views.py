"""Members: the owner invites people, changes their roles and removes them."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from .access import get_project_for
from .actions.members import (
    LastOwnerError,
    do_cancel_invitation,
    do_change_member_role,
    do_invite_member,
    do_remove_member,
)
from .audit import client_ip
from .context import project_context
from .forms import AddMemberForm, MemberRoleForm
from .models import Invitation, Role


@login_required
def members(request, app_id):
    project = get_project_for(request.user, app_id, role=Role.OWNER)
    form = AddMemberForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        name, role = form.cleaned_data["user"], form.cleaned_data["role"]
        do_invite_member(project, name, role, acting_user=request.user, ip=client_ip(request))
        # The same words whether or not the account exists.
        messages.success(
            request,
            f"{name} is invited as {Role(role).label}. If an account with that username or "
            f"email exists, it joins the project at its next login within "
            f"{Invitation.VALID_FOR.days} days.",
        )
        return redirect("projects:members", app_id=project.app_id)
    memberships = project.memberships.select_related("user").order_by("user__username")
    invitations = project.invitations.all()
    return render(
        request,
        "projects/members.html",
        project_context(
            request, project, form=form, memberships=memberships, invitations=invitations,
            roles=Role.choices,
        ),
    )  # fmt: skip


@login_required
@require_POST
def invitation_cancel(request, app_id, invitation_id):
    project = get_project_for(request.user, app_id, role=Role.OWNER)
    invitation = get_object_or_404(project.invitations, pk=invitation_id)
    do_cancel_invitation(invitation, acting_user=request.user, ip=client_ip(request))
    messages.success(request, f"The invitation of {invitation.identifier} was cancelled.")
    return redirect("projects:members", app_id=project.app_id)


@login_required
@require_POST
def member_role(request, app_id, membership_id):
    project = get_project_for(request.user, app_id, role=Role.OWNER)
    membership = get_object_or_404(project.memberships.select_related("user"), pk=membership_id)
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a valid role.")
    else:
        try:
            do_change_member_role(
                membership,
                form.cleaned_data["role"],
                acting_user=request.user,
                ip=client_ip(request),
            )
            messages.success(
                request, f"{membership.user.get_username()} is now {form.cleaned_data['role']}."
            )
        except LastOwnerError as exc:
            messages.error(request, str(exc))
    return redirect("projects:members", app_id=project.app_id)


@login_required
@require_POST
def member_remove(request, app_id, membership_id):
    project = get_project_for(request.user, app_id, role=Role.OWNER)
    membership = get_object_or_404(project.memberships.select_related("user"), pk=membership_id)
    try:
        do_remove_member(membership, acting_user=request.user, ip=client_ip(request))
        messages.success(request, f"{membership.user.get_username()} was removed.")
    except LastOwnerError as exc:
        messages.error(request, str(exc))
    if (
        membership.user_id == request.user.id
        and not project.memberships.filter(user=request.user).exists()
    ):
        return redirect("projects:list")
    return redirect("projects:members", app_id=project.app_id)
