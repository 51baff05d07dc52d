"""The Deliveries page: every delivery of the project with its progress, and
the actions Redeliver, Retry all failed and Deliver past sessions. Progress
updates come from a small JSON endpoint polled by static/portal/delivery.js;
without JavaScript the page is simply refreshed."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from portal.sizes import human_size
from projects.access import get_project_for
from projects.context import project_context
from projects.models import Project, Role
from webhooks.models import WebhookMessage

from .actions import deliveries as actions
from .forms import PastSessionsForm
from .models import DeliveredFile, Delivery

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

PAGE_SIZE = 50
ACTIVE = (
    Delivery.State.QUEUED, Delivery.State.RUNNING, Delivery.State.WAITING, Delivery.State.RETRY_WAIT
)


def delivery_counts(project: Project) -> dict[str, int]:
    """The number of the project's deliveries in each state (one query)."""
    counts = {value: 0 for value in Delivery.State.values}
    rows = Delivery.objects.filter(destination__project=project)
    for row in rows.values("state").annotate(n=Count("id")):
        counts[row["state"]] = row["n"]
    return counts


def webhooks_by_delivery(project: Project, deliveries) -> dict[int, list]:
    """The file_transfer and delivery_failed webhook messages of each delivery
    (keys ``delivery:<id>:file_transfer[:<generation>]`` and
    ``delivery:<id>:delivery_failed:<attempts>``), oldest first. One query,
    bounded by the deliveries asked about (a page), not the project's history."""

    wanted = [d.pk for d in deliveries]
    if not wanted:
        return {}
    keys = Q()
    for pk in wanted:
        keys |= Q(dedupe_key__startswith=f"delivery:{pk}:")
    found: dict[int, list] = {}
    rows = WebhookMessage.objects.filter(keys, project=project).order_by("created_at", "id")
    for message in rows:
        assert message.dedupe_key is not None  # filtered on its prefix above
        found.setdefault(int(message.dedupe_key.split(":")[1]), []).append(message)
    return found


def _listed(project, ids=None):
    rows = Delivery.objects.filter(destination__project=project).select_related(
        "destination", "session__room"
    )
    if ids is not None:
        rows = rows.filter(pk__in=ids)
    verified = Count("files", filter=Q(files__state=DeliveredFile.State.VERIFIED))
    rows = rows.annotate(files_total=Count("files"), files_verified=verified)
    if ids is None:
        rows = rows.prefetch_related("files__recording_file")
    return list(rows.order_by("-created_at", "-id")[:PAGE_SIZE])


class _FileCounts(TypedDict):
    files_total: int
    files_verified: int


def progress_of(delivery: WithAnnotations[Delivery, _FileCounts]) -> dict:
    return {
        "id": delivery.pk,
        "state": delivery.state,
        "state_label": delivery.get_state_display(),
        "active": delivery.state in ACTIVE,
        "percent": delivery.percent,
        "bytes_sent": delivery.bytes_sent,
        "bytes_total": delivery.bytes_total,
        "bytes_text": f"{human_size(delivery.bytes_sent)} / {human_size(delivery.bytes_total)}",
        "files_verified": delivery.files_verified,
        "files_total": delivery.files_total,
        "speed_text": _speed(delivery),
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "next_attempt_at": (
            delivery.next_attempt_at.isoformat()
            if delivery.state == Delivery.State.RETRY_WAIT and delivery.next_attempt_at
            else None
        ),
    }


def _speed(delivery: Delivery) -> str:
    speed = getattr(delivery, "speed", None)
    if not speed and delivery.started_at and delivery.finished_at and delivery.bytes_sent:
        seconds = (delivery.finished_at - delivery.started_at).total_seconds()
        speed = delivery.bytes_sent / seconds if seconds > 0 else None
    return f"{human_size(int(speed))}/s" if speed else ""


@login_required
@require_GET
def deliveries(request, app_id):
    project = get_project_for(request.user, app_id, role=Role.VIEWER)
    rows = _listed(project)
    hooks = webhooks_by_delivery(project, rows)
    counts = delivery_counts(project)
    listed = [{"obj": d, "progress": progress_of(d), "webhooks": hooks.get(d.pk, [])} for d in rows]
    can_act = project.membership.has_role(Role.ADMIN)
    context = project_context(
        request,
        project,
        deliveries=listed,
        summary_text=summary_text(counts),
        can_act=can_act,
        past_form=PastSessionsForm(project=project) if can_act else None,
        any_active=any(d.state in ACTIVE for d in rows),
    )
    return render(request, "delivery/deliveries.html", context)


@login_required
@require_GET
def deliveries_progress(request, app_id):
    project = get_project_for(request.user, app_id, role=Role.VIEWER)
    ids = [int(i) for i in request.GET.get("ids", "").split(",") if i.isdigit()][:PAGE_SIZE]
    rows = _listed(project, ids or None)
    return JsonResponse(
        {
            "deliveries": [progress_of(d) for d in rows],
            "active": any(d.state in ACTIVE for d in rows),
            # Polled every second: the state counts only (one query).
            "summary": summary_text(delivery_counts(project)),
        }
    )


def summary_text(counts: dict[str, int]) -> str:
    """The line above the table ("3 deliveries · 1 in progress or waiting ·
    0 failed."), for the page and its live updates alike."""
    total = sum(counts.values())
    active = sum(counts[state] for state in ACTIVE)
    return (
        f"{total} deliver{'y' if total == 1 else 'ies'} · "
        f"{active} in progress or waiting · {counts[Delivery.State.FAILED]} failed."
    )


@login_required
@require_POST
def redeliver(request, app_id, delivery_id):
    project = get_project_for(request.user, app_id, role=Role.ADMIN)
    delivery = get_object_or_404(Delivery, pk=delivery_id, destination__project=project)
    actions.do_redeliver_delivery(delivery, acting_user=request.user)
    messages.success(
        request,
        f"Session {delivery.session.conf_num} queued again for “{delivery.destination.name}”.",
    )
    return redirect("delivery:deliveries", app_id=project.app_id)


@login_required
@require_POST
def retry_failed(request, app_id):
    project = get_project_for(request.user, app_id, role=Role.ADMIN)
    count = actions.do_retry_failed(project, acting_user=request.user)
    if count:
        messages.success(
            request, f"{count} failed deliver{'y' if count == 1 else 'ies'} queued again."
        )
    else:
        messages.info(request, "No failed deliveries to retry.")
    return redirect("delivery:deliveries", app_id=project.app_id)


@login_required
@require_POST
def past_sessions(request, app_id):
    project = get_project_for(request.user, app_id, role=Role.ADMIN)
    form = PastSessionsForm(request.POST, project=project)
    if not form.is_valid():
        problems = "; ".join(
            f"{form.fields[name].label if name in form.fields else name}: {' '.join(errs)}"
            for name, errs in form.errors.items()
        )
        messages.error(request, f"Past sessions not delivered: {problems}")
        return redirect("delivery:deliveries", app_id=project.app_id)
    try:
        count = actions.do_deliver_past_sessions(
            project,
            since=form.cleaned_data["since"],
            until=form.cleaned_data["until"],
            destination=form.cleaned_data["destination"],
            acting_user=request.user,
        )
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            f"{count} deliver{'y' if count == 1 else 'ies'} of past sessions queued."
            if count
            else "Nothing to deliver: no finished session in that range needs these files.",
        )
    return redirect("delivery:deliveries", app_id=project.app_id)
