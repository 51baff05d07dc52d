from __future__ import annotations

from django.urls import reverse

from projects.models import AuditEvent, Membership, Role


def members_url(world):
    return reverse("projects:members", args=[world.app_id])


def test_a_person_named_by_email_joins_at_next_login_and_is_told(client, world):
    from tests.conftest import PASSWORD

    client.force_login(world.alice)
    response = client.post(members_url(world), {"user": "charlie@example.com", "role": Role.STAFF})
    assert response.status_code == 302
    assert not Membership.objects.filter(project=world.project, user=world.charlie).exists()
    client.logout()
    page = client.post(
        reverse("login"), {"username": "charlie", "password": PASSWORD}, follow=True
    ).content.decode()
    assert Membership.objects.get(project=world.project, user=world.charlie).role == Role.STAFF
    assert "You were added to the project Alpha as Staff" in page
    assert world.project.name in page  # on the list of projects
    added = AuditEvent.objects.get(action=AuditEvent.Action.MEMBER_ADDED)
    assert added.actor == world.alice and added.detail["member"] == "charlie"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.MEMBER_INVITED).exists()
    assert not world.project.invitations.exists()  # used up
    client.force_login(world.alice)
    audit = client.get(reverse("projects:audit", args=[world.app_id])).content.decode()
    assert "Member added" in audit and "charlie" in audit


def test_the_members_form_answers_the_same_whether_or_not_the_account_exists(client, world):
    import re

    client.force_login(world.alice)

    def answer(name: str) -> tuple[int, str, str]:
        page = client.post(members_url(world), {"user": name, "role": Role.VIEWER}, follow=True)
        text = page.content.decode()
        message = re.search(r'<ul class="messages">(.*?)</ul>', text, re.S).group(1)
        row = re.search(rf"<td[^>]*>{re.escape(name)} <span[^>]*>(.*?)</span>", text).group(1)
        return page.status_code, message.replace(name, "NAME"), row

    exists, missing = answer("charlie"), answer("nobody-at-all")
    assert exists == missing
    assert "joins the project at its next login" in exists[1]
    assert not Membership.objects.filter(project=world.project, user=world.charlie).exists()


def test_an_invitation_can_be_cancelled(client, world):
    from tests.conftest import PASSWORD

    client.force_login(world.alice)
    client.post(members_url(world), {"user": "charlie", "role": Role.VIEWER})
    invitation = world.project.invitations.get()
    client.post(reverse("projects:invitation_cancel", args=[world.app_id, invitation.pk]))
    client.logout()
    client.post(reverse("login"), {"username": "charlie", "password": PASSWORD})
    assert not Membership.objects.filter(project=world.project, user=world.charlie).exists()


def test_adding_an_existing_member_is_refused(client, world):
    client.force_login(world.alice)
    response = client.post(members_url(world), {"user": "bob", "role": Role.VIEWER})
    assert "already a member" in response.content.decode()


def test_owner_changes_a_role(client, world):
    client.force_login(world.alice)
    bob = Membership.objects.get(project=world.project, user=world.bob)
    client.post(reverse("projects:member_role", args=[world.app_id, bob.pk]), {"role": Role.ADMIN})
    bob.refresh_from_db()
    assert bob.role == Role.ADMIN


def test_the_last_owner_cannot_be_removed_or_demoted(client, world):
    client.force_login(world.alice)
    alice = Membership.objects.get(project=world.project, user=world.alice)
    response = client.post(
        reverse("projects:member_remove", args=[world.app_id, alice.pk]), follow=True
    )
    assert "last owner" in response.content.decode()
    client.post(
        reverse("projects:member_role", args=[world.app_id, alice.pk]), {"role": Role.VIEWER}
    )
    alice.refresh_from_db()
    assert alice.role == Role.OWNER


def test_an_owner_can_leave_when_another_owner_remains(client, world):
    bob = Membership.objects.get(project=world.project, user=world.bob)
    bob.role = Role.OWNER
    bob.save()
    client.force_login(world.alice)
    alice = Membership.objects.get(project=world.project, user=world.alice)
    response = client.post(reverse("projects:member_remove", args=[world.app_id, alice.pk]))
    assert response["Location"] == reverse("projects:list")
    assert not Membership.objects.filter(pk=alice.pk).exists()


def test_admins_cannot_manage_members(client, world, member):
    member(Role.ADMIN, client)
    bob = Membership.objects.get(project=world.project, user=world.bob)
    assert client.get(members_url(world)).status_code == 403
    response = client.post(reverse("projects:member_remove", args=[world.app_id, bob.pk]))
    assert response.status_code == 403


def test_members_of_another_project_cannot_be_touched(client, world, make_user):
    from projects.actions.projects import do_create_project

    other = do_create_project("Other", acting_user=make_user("dora")).project
    foreign = other.memberships.get()
    client.force_login(world.alice)
    response = client.post(reverse("projects:member_remove", args=[world.app_id, foreign.pk]))
    assert response.status_code == 404


def test_audit_log_lists_events_without_secrets(client, world):
    client.force_login(world.alice)
    client.post(reverse("projects:regenerate_app_key", args=[world.app_id]))
    page = client.get(reverse("projects:audit", args=[world.app_id])).content.decode()
    assert "App key regenerated" in page
    assert world.created.app_key not in page


def test_audit_details_list_changed_settings_readably(client, world):
    from projects.audit import log_audit

    log_audit(world.project, AuditEvent.Action.WEBHOOK_CHANGED, actor=world.alice,
              changed=["url", "enabled"])  # fmt: skip
    client.force_login(world.alice)
    page = client.get(reverse("projects:audit", args=[world.app_id])).content.decode()
    assert "url, enabled" in page and "[&#x27;url" not in page


def test_an_invitation_lapses_after_its_time_and_inviting_again_renews_it(client, world):
    from datetime import timedelta

    from django.utils import timezone

    from projects.models import Invitation
    from tests.conftest import PASSWORD

    client.force_login(world.alice)
    answer = client.post(members_url(world), {"user": "charlie", "role": Role.STAFF}, follow=True)
    assert "at its next login within 14 days" in answer.content.decode()
    invitation = world.project.invitations.get()
    expires = timezone.localtime(invitation.expires_at).strftime("%-d %b %Y")
    assert f"joins at next login before {expires}" in answer.content.decode()
    lapsed = timezone.now() - Invitation.VALID_FOR - timedelta(minutes=1)
    Invitation.objects.filter(pk=invitation.pk).update(created_at=lapsed)
    page = client.get(members_url(world)).content.decode()
    assert "invitation lapsed on" in page and "invite again to renew" in page

    client.logout()
    client.post(reverse("login"), {"username": "charlie", "password": PASSWORD})
    assert not Membership.objects.filter(project=world.project, user=world.charlie).exists()
    assert not world.project.invitations.exists()  # a lapsed invitation is removed unused

    client.force_login(world.alice)
    client.post(members_url(world), {"user": "charlie", "role": Role.STAFF})
    Invitation.objects.filter(pk=world.project.invitations.get().pk).update(created_at=lapsed)
    client.post(members_url(world), {"user": "charlie", "role": Role.STAFF})  # invited again
    assert not world.project.invitations.get().expired
    client.logout()
    client.post(reverse("login"), {"username": "charlie", "password": PASSWORD})
    assert Membership.objects.get(project=world.project, user=world.charlie).role == Role.STAFF
