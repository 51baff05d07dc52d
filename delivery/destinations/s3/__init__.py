"""AWS S3 or an S3-compatible store: destination.py (connection, multipart
upload, verify), form.py (settings), errors.py (what S3's answers mean)."""

from .destination import S3Destination
from .form import S3Form

__all__ = ["S3Destination", "S3Form"]
