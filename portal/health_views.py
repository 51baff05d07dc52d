"""``/healthz`` for load balancers and the admin's health page for staff."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from . import health


@never_cache
@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    # Nobody is told why: the answer goes to anyone who asks, and looking at
    # request.user would itself need the database this may be reporting down.
    # Staff find the figures on the admin's health page.
    if all(health.web_checks().values()):
        return HttpResponse("ok\n", content_type="text/plain")
    return HttpResponse("unavailable\n", status=503, content_type="text/plain")


@never_cache
def health_page(request: HttpRequest) -> HttpResponse:
    """Staff only: wrapped in admin.site.admin_view in portal/urls.py."""
    context = {
        **admin.site.each_context(request),
        "title": "Health",
        "report": health.report(),
    }
    return TemplateResponse(request, "admin/health.html", context)
