"""A local or NFS folder of the portal's host (operator-enabled roots only)."""

from .destination import LocalFolderDestination, LocalFolderForm, allowed_roots, refusal

__all__ = ["LocalFolderDestination", "LocalFolderForm", "allowed_roots", "refusal"]
