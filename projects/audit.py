from __future__ import annotations

from typing import Any

from .models import AuditEvent, Project


def client_ip(request) -> str | None:
    """The client address. Behind the documented nginx proxy REMOTE_ADDR is
    nginx, which sets X-Real-IP; trust it only from a loopback peer."""
    remote = request.META.get("REMOTE_ADDR")
    real = request.META.get("HTTP_X_REAL_IP")
    if real and remote in ("127.0.0.1", "::1"):
        return real
    return remote


def log_audit(
    project: Project, action: str, *, actor=None, ip: str | None = None, **detail: Any
) -> AuditEvent:
    return AuditEvent.objects.create(
        project=project, action=action, actor=actor, ip_address=ip, detail=detail
    )
