"""Settings → Recording & Delivery: the project's destinations, adding and
editing one, "Test connection" (with trusting a host key or certificate).
A kind's own cards and buttons (a Google account, an SSH key pair) come from
its hooks (``settings_panel``, ``list_note``, ``row_actions``) and its views
live in its folder, ``delivery/destinations/<kind>/views.py``."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from projects.access import get_project_for
from projects.audit import client_ip
from projects.context import project_context
from projects.models import Role

from .actions import destinations as actions
from .connection_test import check_connection
from .destinations import DEFAULT_KIND, REGISTRY, describe_destination, destination_class
from .destinations.base import TransferError, UntrustedHostKey
from .forms import (
    DestinationCommonForm,
    KindChoiceForm,
    TrustForm,
    destination_settings,
    kind_form,
)
from .models import DeliveryDestination, FileType

TYPE_LABELS = dict(FileType.choices)


def destination_row(destination: DeliveryDestination) -> dict:
    kind = destination_class(destination.kind)
    return {
        "obj": destination,
        "description": describe_destination(destination),
        "types": [TYPE_LABELS.get(t, t) for t in destination.file_types],
        "pinned_key_name": kind.pinned_key_name,
        "note": kind.list_note(destination),
        "attention": kind.needs_attention(destination),
        "actions": kind.row_actions(destination),
    }


def _page(request, project, *, template="delivery/settings.html", status=200, **extra):
    rows = [destination_row(d) for d in project.destinations.all()]
    context = project_context(request, project, destinations=rows, kinds=REGISTRY, **extra)
    return render(request, template, context, status=status)


def destination_for_admin(request, app_id, dest_id):
    """(project, destination) for a project administrator, else 403/404;
    the kinds' views use it too."""
    project = get_project_for(request.user, app_id, role=Role.ADMIN)
    return project, get_object_or_404(DeliveryDestination, project=project, pk=dest_id)


@login_required
def delivery_settings(request, app_id):
    project = get_project_for(request.user, app_id, role=Role.ADMIN)
    kind = request.POST.get("kind") or request.GET.get("kind") or ""
    if kind and kind not in REGISTRY:
        kind = ""
    chooser = KindChoiceForm(initial={"kind": kind or DEFAULT_KIND})
    if kind and (reason := destination_class(kind).unavailable()):
        messages.error(request, reason)
        return _page(request, project, chooser=chooser, status=400)
    if not kind:
        return _page(request, project, chooser=chooser)
    if request.method == "POST":
        common = DestinationCommonForm(request.POST, project=project)
        form = kind_form(kind, request.POST, app_id=project.app_id)
        if common.is_valid() & form.is_valid():
            destination = _save(request, project, kind, common, form)
            messages.success(request, f"Destination “{destination.name}” saved.")
            return redirect("delivery:edit", app_id=project.app_id, dest_id=destination.pk)
        return _page(
            request, project, chooser=chooser, kind=kind, form_label=REGISTRY[kind][0],
            common=common, form=form, status=400,
        )  # fmt: skip
    common = DestinationCommonForm(project=project, initial={"name": _free_name(project, kind)})
    return _page(
        request, project, chooser=chooser, kind=kind, form_label=REGISTRY[kind][0],
        common=common, form=kind_form(kind, app_id=project.app_id),
    )  # fmt: skip


def _free_name(project, kind: str) -> str:
    taken = set(project.destinations.values_list("name", flat=True))
    name, n = kind, 2
    while name in taken:
        name, n = f"{kind}-{n}", n + 1
    return name


def _save(request, project, kind, common, form, destination=None):
    data = common.cleaned_data
    public_config, new_secrets = destination_settings(form)
    return actions.do_save_destination(
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
    project, destination = destination_for_admin(request, app_id, dest_id)
    if request.method == "POST":
        common = DestinationCommonForm(request.POST, project=project, instance=destination)
        form = kind_form(destination.kind, request.POST, destination=destination)
        if common.is_valid() & form.is_valid():
            _save(request, project, destination.kind, common, form, destination)
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
        row={
            **destination_row(destination),
            "panel": destination_class(destination.kind).settings_panel(destination),
        },
        common=common,
        form=form,
    )


@login_required
@require_POST
def destination_delete(request, app_id, dest_id):
    project, destination = destination_for_admin(request, app_id, dest_id)
    actions.do_delete_destination(destination, acting_user=request.user, ip=client_ip(request))
    messages.success(request, f"Destination “{destination.name}” deleted.")
    return redirect("delivery:settings", app_id=project.app_id)


def _back(request, project, destination):
    if request.POST.get("back") == "edit":
        return redirect("delivery:edit", app_id=project.app_id, dest_id=destination.pk)
    return redirect("delivery:settings", app_id=project.app_id)


def _run_test(request, project, destination):
    """Run the probe; on an unknown key render the page with the trust form."""
    try:
        message = check_connection(destination)
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
        if exc.needs_reconnect:
            actions.do_record_account_error(destination, exc.message)
        messages.error(request, f"Test of “{destination.name}” failed: {exc.message}")
        return _back(request, project, destination)
    actions.do_record_account_error(destination, "")
    messages.success(request, f"Test of “{destination.name}” passed: {message}")
    return _back(request, project, destination)


@login_required
@require_POST
def destination_test(request, app_id, dest_id):
    project, destination = destination_for_admin(request, app_id, dest_id)
    return _run_test(request, project, destination)


@login_required
@require_POST
def destination_trust(request, app_id, dest_id):
    project, destination = destination_for_admin(request, app_id, dest_id)
    form = TrustForm(request.POST)
    if not form.is_valid():
        messages.error(request, "That is not a SHA256 fingerprint; test the connection again.")
        return _back(request, project, destination)
    wanted = form.cleaned_data["fingerprint"]
    try:
        check_connection(destination)
    except UntrustedHostKey as exc:
        if exc.fingerprint.rstrip("=") != wanted.rstrip("="):
            messages.error(
                request,
                f"The server now presents {exc.fingerprint}, not the {exc.what} you checked "
                f"({wanted}). Nothing was trusted: check the new one.",
            )
            return _back(request, project, destination)
        actions.do_trust_fingerprint(
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
