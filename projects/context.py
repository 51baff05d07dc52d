from __future__ import annotations

from .navigation import tabs_for


def project_context(request, project, **extra):
    """Context every project page shares: the project, the member's role and
    the tab bar."""
    match = getattr(request, "resolver_match", None)
    url_name = f"{match.namespace}:{match.url_name}" if match else ""
    return {
        "project": project,
        "membership": getattr(project, "membership", None),
        "tabs": tabs_for(project, url_name),
        **extra,
    }
