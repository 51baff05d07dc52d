"""Microsoft Azure Blob storage: destination.py (connection, upload,
verify), blocks.py (block blobs a later run continues), form.py (settings)."""

from .destination import AzureBlobDestination
from .form import AzureBlobForm, connection_string_url

__all__ = ["AzureBlobDestination", "AzureBlobForm", "connection_string_url"]
