"""Google Drive of a connected Google account: destination.py (resumable
uploads, folders), errors.py (what Google's answers mean), form.py, and the
"Connect Google account" flow: oauth.py (Google's OAuth), connect.py (its
signed state), actions.py, views.py, urls.py, templates/."""

from ..base import lazy_exports

# The kind's name, for the views that must not load the class to learn it.
KIND = "gdrive"

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

__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = ["KIND", *sorted(_EXPORTS)]
