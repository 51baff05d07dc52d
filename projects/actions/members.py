"""Members of a project and invitations to join it."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..audit import log_audit
from ..models import AuditEvent, Invitation, Membership, Project, Role


class LastOwnerError(Exception):
    """A project always keeps at least one owner."""


def _ensure_another_owner(membership: Membership) -> None:
    owners = Membership.objects.select_for_update().filter(
        project_id=membership.project_id, role=Role.OWNER
    )
    if membership.role == Role.OWNER and owners.exclude(pk=membership.pk).count() == 0:
        raise LastOwnerError(
            "The last owner cannot be removed or demoted; add another owner first."
        )


@transaction.atomic
def do_add_member(
    project: Project, user, role: str, *, acting_user, ip: str | None = None
) -> Membership:
    membership = Membership.objects.create(project=project, user=user, role=role)
    log_audit(
        project,
        AuditEvent.Action.MEMBER_ADDED,
        actor=acting_user,
        ip=ip,
        member=user.get_username(),
        role=role,
    )
    return membership


@transaction.atomic
def do_invite_member(
    project: Project, identifier: str, role: str, *, acting_user, ip: str | None = None
) -> Invitation:
    """Name a person (username or email) for the project. Nothing tells the
    inviter whether the account exists; it joins at its next login."""
    invitation, _ = Invitation.objects.update_or_create(
        project=project, identifier=identifier,
        # Inviting again renews the invitation for another VALID_FOR.
        defaults={"role": role, "invited_by": acting_user, "created_at": timezone.now()},
    )  # fmt: skip
    log_audit(
        project, AuditEvent.Action.MEMBER_INVITED, actor=acting_user, ip=ip,
        member=identifier, role=role,
    )  # fmt: skip
    return invitation


@transaction.atomic
def do_cancel_invitation(invitation: Invitation, *, acting_user, ip: str | None = None) -> None:
    invitation.delete()
    log_audit(
        invitation.project, AuditEvent.Action.MEMBER_REMOVED, actor=acting_user, ip=ip,
        member=invitation.identifier, invitation=True,
    )  # fmt: skip


@transaction.atomic
def do_accept_invitations(*, acting_user, ip: str | None = None) -> list[Membership]:
    """At login: every current invitation naming the username or email of
    ``acting_user`` (the person logging in) becomes a membership (audited as
    added by the inviter). Lapsed ones naming them are removed unused."""
    user = acting_user
    names = Q(identifier=user.get_username())
    if user.email:
        names |= Q(identifier__iexact=user.email)
    joined = []
    for invitation in (
        Invitation.objects.select_for_update().filter(names).select_related("project")
    ):
        project = invitation.project
        if invitation.expired:
            invitation.delete()
            continue
        if not Membership.objects.filter(project=project, user=user).exists():
            joined.append(
                do_add_member(
                    project, user, invitation.role, acting_user=invitation.invited_by, ip=ip
                )
            )
        invitation.delete()
    return joined


@transaction.atomic
def do_change_member_role(
    membership: Membership, role: str, *, acting_user, ip: str | None = None
) -> None:
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if role != Role.OWNER:
        _ensure_another_owner(membership)
    old = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    log_audit(
        membership.project,
        AuditEvent.Action.MEMBER_ROLE_CHANGED,
        actor=acting_user,
        ip=ip,
        member=membership.user.get_username(),
        old_role=old,
        role=role,
    )


@transaction.atomic
def do_remove_member(membership: Membership, *, acting_user, ip: str | None = None) -> None:
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    _ensure_another_owner(membership)
    membership.delete()
    log_audit(
        membership.project,
        AuditEvent.Action.MEMBER_REMOVED,
        actor=acting_user,
        ip=ip,
        member=membership.user.get_username(),
        role=membership.role,
    )
