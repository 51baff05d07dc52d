"""Settings → Recording & Delivery: the project's destinations, adding and
editing one, "Test connection" (with trusting a host key), SSH key pairs and
connecting a Google account."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from projects.access import get_project_for
from projects.audit import client_ip
from projects.context import project_context
from projects.models import Role

from . import config, google_oauth, services
from .destinations import REGISTRY, destination_class, kinds_where
from .destinations.base import TransferError, UntrustedHostKey
from .destinations.keypairs import generate_keypair
from .forms import (
    DestinationCommonForm,
    KindChoiceForm,
    TrustForm,
    destination_settings,
    kind_form,
)
from .models import DeliveryDestination, FileType

TYPE_LABELS = dict(FileType.choices)


def google_account_problem(destination: DeliveryDestination) -> str:
    """Why the Google account must be reconnected, or ""."""
    if not destination_class(destination.kind).connects_google_account:
        return ""
    # Set by a failed connection test or by the delivery engine.
    return destination.config.get(config.GOOGLE_ERROR_KEY, "")


def destination_row(destination: DeliveryDestination) -> dict:
    kind = destination_class(destination.kind)
    return {
        "obj": destination,
        "description": config.describe_destination(destination),
        "types": [TYPE_LABELS.get(t, t) for t in destination.file_types],
        "ssh": kind.uses_ssh_keys,
        "gdrive": kind.connects_google_account,
        "google_connected": bool((destination.secrets or {}).get("refresh_token")),
        "google_problem": google_account_problem(destination),
    }


def _page(request, project, *, template="delivery/settings.html", status=200, **extra):
    rows = [destination_row(d) for d in project.destinations.all()]
    context = project_context(request, project, destinations=rows, kinds=REGISTRY, **extra)
    return render(request, template, context, status=status)


def _destination(request, app_id, dest_id):
    project = get_project_for(request.user, app_id, role=Role.ADMIN)
    return project, get_object_or_404(DeliveryDestination, project=project, pk=dest_id)


@login_required
def delivery_settings(request, app_id):
    project = get_project_for(request.user, app_id, role=Role.ADMIN)
    kind = request.POST.get("kind") or request.GET.get("kind") or ""
    if kind and kind not in REGISTRY:
        kind = ""
    chooser = KindChoiceForm(initial={"kind": kind or "s3"})
    if kind and (reason := destination_class(kind).unavailable()):
        messages.error(request, reason)
        return _page(request, project, chooser=chooser, status=400)
    if not kind:
        return _page(request, project, chooser=chooser)
    if request.method == "POST":
        data, public_key = _with_generated_key(request, kind)
        common = DestinationCommonForm(data, project=project)
        form = kind_form(kind, data)
        if common.is_valid() & form.is_valid():
            destination = _save(request, project, kind, common, form, public_key=public_key)
            messages.success(request, f"Destination “{destination.name}” saved.")
            return redirect("delivery:edit", app_id=project.app_id, dest_id=destination.pk)
        return _page(
            request, project, chooser=chooser, kind=kind, form_label=REGISTRY[kind][0],
            common=common, form=form, status=400,
        )  # fmt: skip
    common = DestinationCommonForm(project=project, initial={"name": _free_name(project, kind)})
    return _page(
        request, project, chooser=chooser, kind=kind, form_label=REGISTRY[kind][0],
        common=common, form=kind_form(kind),
    )  # fmt: skip


def _free_name(project, kind: str) -> str:
    taken = set(project.destinations.values_list("name", flat=True))
    name, n = kind, 2
    while name in taken:
        name, n = f"{kind}-{n}", n + 1
    return name


def _with_generated_key(request, kind: str):
    """The POST data, with a new private key in it when "Generate a key pair"
    was ticked and no key was pasted; and the public key to show."""
    data = request.POST
    if (
        not destination_class(kind).uses_ssh_keys
        or not data.get("generate_key")
        or data.get("private_key")
    ):
        return data, None
    private, public = generate_keypair(
        f"recording-portal-{request.resolver_match.kwargs['app_id']}"
    )
    data = data.copy()
    data["private_key"], data["passphrase"] = private, ""
    return data, public


def _save(request, project, kind, common, form, destination=None, public_key=None):
    data = common.cleaned_data
    public_config, new_secrets = destination_settings(form)
    if public_key:
        public_config["public_key"] = public_key
    return config.do_save_destination(
        project,
        kind,
        name=data["name"],
        file_types=data["file_types"],
        enabled=data["enabled"],
        public_config=public_config,
        new_secrets=new_secrets,
        write_manifest=data["write_manifest"],
        destination=destination,
        acting_user=request.user,
        ip=client_ip(request),
    )


@login_required
def destination_edit(request, app_id, dest_id):
    project, destination = _destination(request, app_id, dest_id)
    if request.method == "POST":
        data, public_key = _with_generated_key(request, destination.kind)
        common = DestinationCommonForm(data, project=project, instance=destination)
        form = kind_form(destination.kind, data, destination=destination)
        if common.is_valid() & form.is_valid():
            _save(request, project, destination.kind, common, form, destination, public_key)
            messages.success(request, f"Destination “{common.cleaned_data['name']}” saved.")
            return redirect("delivery:edit", app_id=project.app_id, dest_id=destination.pk)
        status = 400
    else:
        common = DestinationCommonForm(project=project, instance=destination)
        form = kind_form(destination.kind, destination=destination)
        status = 200
    return _page(
        request,
        project,
        template="delivery/edit.html",
        status=status,
        row=destination_row(destination),
        common=common,
        form=form,
    )


@login_required
@require_POST
def destination_delete(request, app_id, dest_id):
    project, destination = _destination(request, app_id, dest_id)
    config.do_delete_destination(destination, acting_user=request.user, ip=client_ip(request))
    messages.success(request, f"Destination “{destination.name}” deleted.")
    return redirect("delivery:settings", app_id=project.app_id)


def _back(request, project, destination):
    if request.POST.get("back") == "edit":
        return redirect("delivery:edit", app_id=project.app_id, dest_id=destination.pk)
    return redirect("delivery:settings", app_id=project.app_id)


def _run_test(request, project, destination):
    """Run the probe; on an unknown key render the page with the trust form."""
    try:
        message = services.test_destination(destination)
    except UntrustedHostKey as exc:
        return _page(
            request,
            project,
            untrusted={
                "destination": destination,
                "error": exc,
                "form": TrustForm(initial={"fingerprint": exc.fingerprint}),
            },
        )
    except TransferError as exc:
        if getattr(exc, "reconnect", False):
            config.do_record_account_error(destination, exc.message)
        messages.error(request, f"Test of “{destination.name}” failed: {exc.message}")
        return _back(request, project, destination)
    config.do_record_account_error(destination, "")
    messages.success(request, f"Test of “{destination.name}” passed: {message}")
    return _back(request, project, destination)


@login_required
@require_POST
def destination_test(request, app_id, dest_id):
    project, destination = _destination(request, app_id, dest_id)
    return _run_test(request, project, destination)


@login_required
@require_POST
def destination_trust(request, app_id, dest_id):
    project, destination = _destination(request, app_id, dest_id)
    form = TrustForm(request.POST)
    if not form.is_valid():
        messages.error(request, "That is not a SHA256 fingerprint; test the connection again.")
        return _back(request, project, destination)
    wanted = form.cleaned_data["fingerprint"]
    try:
        services.test_destination(destination)
    except UntrustedHostKey as exc:
        if exc.fingerprint.rstrip("=") != wanted.rstrip("="):
            messages.error(
                request,
                f"The server now presents {exc.fingerprint}, not the {exc.what} you checked "
                f"({wanted}). Nothing was trusted: check the new one.",
            )
            return _back(request, project, destination)
        config.do_trust_fingerprint(
            destination, exc.fingerprint, acting_user=request.user, ip=client_ip(request)
        )
        destination.refresh_from_db()
        return _run_test(request, project, destination)
    except TransferError:
        pass
    messages.error(
        request,
        f"The server did not present an untrusted key for {wanted}: nothing to trust. "
        "Test the connection to see where it stands.",
    )
    return _back(request, project, destination)


@login_required
@require_POST
def destination_keypair(request, app_id, dest_id):
    project, destination = _destination(request, app_id, dest_id)
    if not destination_class(destination.kind).uses_ssh_keys:
        raise Http404("Only SFTP and SCP destinations use key pairs")
    config.do_generate_keypair(destination, acting_user=request.user, ip=client_ip(request))
    messages.success(
        request,
        "A new key pair was generated. Add its public key to the user's "
        "~/.ssh/authorized_keys on the server, then test the connection.",
    )
    return redirect("delivery:edit", app_id=project.app_id, dest_id=destination.pk)


# -- Google account ------------------------------------------------------------------------------


@login_required
@require_GET
def google_connect(request, app_id, dest_id):
    # A link, not a form: CSP form-action would stop a form redirecting to Google.
    project, destination = _destination(request, app_id, dest_id)
    if not destination_class(destination.kind).connects_google_account:
        raise Http404("Only Google Drive destinations connect a Google account")
    try:
        url = config.browser_connect_url(destination, request.session)
    except google_oauth.GoogleOAuthError as exc:
        messages.error(request, exc.message)
        return redirect("delivery:edit", app_id=project.app_id, dest_id=destination.pk)
    return redirect(url)


@require_GET
def google_callback(request):
    def refuse(message: str, status: int = 400):
        return render(request, "delivery/google_error.html", {"message": message}, status=status)

    try:
        state = config.read_connect_state(request.GET.get("state", ""))
    except config.ConnectStateError as exc:
        return refuse(str(exc))
    destination = DeliveryDestination.objects.filter(
        pk=state.destination_id,
        project__app_id=state.app_id,
        kind__in=kinds_where("connects_google_account"),
    ).first()
    if destination is None:
        return refuse("The destination this Google account was meant for no longer exists.", 404)
    user = request.user if request.user.is_authenticated else None
    if state.headless:
        claimed = config.claim_headless_nonce(destination, state)
    else:
        if user is None:
            return redirect_to_login(request)
        get_project_for(user, state.app_id, role=Role.ADMIN)
        claimed = config.claim_browser_nonce(request.session, state)
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
        account = google_oauth.exchange_code(
            config.google_redirect_uri(), request.GET.get("code", ""), request.GET["state"]
        )
    except google_oauth.GoogleOAuthError as exc:
        return refuse(exc.message, 502)
    config.do_connect_google_account(destination, account, acting_user=user, ip=client_ip(request))
    if user is None:
        return render(request, "delivery/google_connected.html", {"email": account.email})
    messages.success(request, f"Google account {account.email} connected.")
    return redirect("delivery:edit", app_id=state.app_id, dest_id=destination.pk)


def redirect_to_login(request):
    from django.contrib.auth.views import redirect_to_login as to_login

    return to_login(request.get_full_path())


@login_required
@require_POST
def google_disconnect(request, app_id, dest_id):
    project, destination = _destination(request, app_id, dest_id)
    revoked = config.do_disconnect_google_account(
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
