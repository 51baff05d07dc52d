from __future__ import annotations

import ipaddress
from typing import Any

from .models import AuditEvent, Project


def client_ip(request) -> str | None:
    """The client address. Behind the documented nginx proxy REMOTE_ADDR is
    nginx, which sets X-Real-IP; trust it only from a loopback peer, and only
    when it is an address (it is stored, and keys throttles). django-axes uses
    this too (``AXES_CLIENT_IP_CALLABLE``), so logins are locked per real
    client, not per proxy."""
    remote = request.META.get("REMOTE_ADDR")
    real = (request.META.get("HTTP_X_REAL_IP") or "").strip()
    if real and remote in ("127.0.0.1", "::1"):
        try:
            return str(ipaddress.ip_address(real))
        except ValueError:
            pass
    return remote


def log_audit(
    project: Project, action: str, *, actor=None, ip: str | None = None, **detail: Any
) -> AuditEvent:
    return AuditEvent.objects.create(
        project=project, action=action, actor=actor, ip_address=ip, detail=detail
    )
