"""FTP or explicit FTPS: destination.py (login, resumable upload, verify),
connection.py (guarded control/data connections, certificates), form.py."""

from .connection import certificate_fingerprint
from .destination import FTPDestination, tls_certificate_fingerprint
from .form import FTPForm

__all__ = ["FTPDestination", "FTPForm", "certificate_fingerprint", "tls_certificate_fingerprint"]
