"""Connecting a Google account to a Google Drive destination: the button's
link to Google's consent page, Google's redirect back (the callback, for a
browser session or a consent URL made by the command) and disconnecting."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from projects.access import get_project_for
from projects.audit import client_ip
from projects.models import Role

from ...models import DeliveryDestination
from ...settings_views import destination_for_admin
from ..base import package_template
from . import KIND, actions, connect, oauth


def _render(request, name: str, context: dict, *, status: int = 200):
    from django.http import HttpResponse

    template = package_template(__file__, name)
    return HttpResponse(template.render(context, request), status=status)


@login_required
@require_GET
def google_connect(request, app_id, dest_id):
    # A link, not a form: CSP form-action would stop a form redirecting to Google.
    project, destination = destination_for_admin(request, app_id, dest_id)
    if destination.kind != KIND:
        raise Http404("Only Google Drive destinations connect a Google account")
    try:
        url = connect.browser_connect_url(destination, request.session)
    except oauth.GoogleOAuthError as exc:
        messages.error(request, exc.message)
        return redirect("delivery:edit", app_id=project.app_id, dest_id=destination.pk)
    return redirect(url)


@require_GET
def google_callback(request):
    def refuse(message: str, status: int = 400):
        return _render(request, "error.html", {"message": message}, status=status)

    try:
        state = connect.read_connect_state(request.GET.get("state", ""))
    except connect.ConnectStateError as exc:
        return refuse(str(exc))
    destination = DeliveryDestination.objects.filter(
        pk=state.destination_id, project__app_id=state.app_id, kind=KIND
    ).first()
    if destination is None:
        return refuse("The destination this Google account was meant for no longer exists.", 404)
    user = request.user if request.user.is_authenticated else None
    if state.headless:
        claimed = actions.claim_headless_nonce(destination, state)
    else:
        if user is None:
            return redirect_to_login(request.get_full_path())
        get_project_for(user, state.app_id, role=Role.ADMIN)
        claimed = connect.claim_browser_nonce(request.session, state)
    if not claimed:
        return refuse(
            "This answer from Google does not match a connection you started "
            "(state mismatch or already used): start again with “Connect Google account”."
        )
    if error := request.GET.get("error"):
        return refuse(
            f"Google did not connect the account ({error}). Try again if that was a mistake."
        )
    try:
        account = oauth.exchange_code(
            connect.google_redirect_uri(), request.GET.get("code", ""), request.GET["state"]
        )
    except oauth.GoogleOAuthError as exc:
        return refuse(exc.message, 502)
    actions.do_connect_google_account(destination, account, acting_user=user, ip=client_ip(request))
    if user is None:
        return _render(request, "connected.html", {"email": account.email})
    messages.success(request, f"Google account {account.email} connected.")
    return redirect("delivery:edit", app_id=state.app_id, dest_id=destination.pk)


@login_required
@require_POST
def google_disconnect(request, app_id, dest_id):
    project, destination = destination_for_admin(request, app_id, dest_id)
    revoked = actions.do_disconnect_google_account(
        destination, acting_user=request.user, ip=client_ip(request)
    )
    if revoked:
        messages.success(request, "Google account disconnected and its access revoked.")
    else:
        messages.warning(
            request,
            "Google account forgotten here, but Google could not be reached to revoke its "
            "access: remove it at https://myaccount.google.com/permissions.",
        )
    return redirect("delivery:edit", app_id=project.app_id, dest_id=destination.pk)
