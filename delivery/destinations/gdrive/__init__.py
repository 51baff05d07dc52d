"""Google Drive of a connected Google account: destination.py (resumable
uploads, folders), errors.py (what Google's answers mean), form.py, and the
"Connect Google account" flow: oauth.py (Google's OAuth), connect.py (its
signed state), actions.py, views.py, urls.py, templates/."""

from .destination import GoogleDriveDestination
from .errors import REVOKED_MESSAGE, GoogleAccountError, GoogleGrantRevoked
from .form import GoogleDriveForm, parse_folder

__all__ = [
    "REVOKED_MESSAGE",
    "GoogleAccountError",
    "GoogleDriveDestination",
    "GoogleDriveForm",
    "GoogleGrantRevoked",
    "parse_folder",
]
