"""Google Drive of a connected Google account: destination.py (resumable
uploads, folders), errors.py (what Google's answers mean), form.py, and the
"Connect Google account" flow: oauth.py (Google's OAuth), connect.py (its
signed state), actions.py, views.py, urls.py, templates/."""

from importlib import import_module
from typing import Any

# Loaded on first use (PEP 562): the URL configuration imports gdrive.urls,
# and the web should not load Google's client library for that.
_EXPORTS = {
    "GoogleDriveDestination": "destination",
    "REVOKED_MESSAGE": "errors",
    "GoogleAccountError": "errors",
    "GoogleGrantRevoked": "errors",
    "GoogleDriveForm": "form",
    "parse_folder": "form",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)


__all__ = sorted(_EXPORTS)
