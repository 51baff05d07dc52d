"""Registry of destination kinds: kind -> (label, dotted path of the class).

Each kind is one folder, ``delivery/destinations/<kind>/``: its Destination
subclass, its form, and any views, URLs and templates it needs, with the
hooks the generic pages, actions and engine call (see base.py). Adding a
kind = one folder, one line below, its tests and a server fixture. The
registry also feeds the model's ``kind`` choices.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any

from django.utils.module_loading import import_string

from .base import Destination

REGISTRY: dict[str, tuple[str, str]] = {
    "ftp": ("FTP / FTPS to my server", "delivery.destinations.ftp.FTPDestination"),
    "sftp": ("SFTP to my server", "delivery.destinations.sftp.SFTPDestination"),
    "scp": ("Secure copy (SCP) to my server", "delivery.destinations.scp.SCPDestination"),
    "s3": ("Save on AWS S3 (or S3-compatible)", "delivery.destinations.s3.S3Destination"),
    "gdrive": ("Save on Google Drive", "delivery.destinations.gdrive.GoogleDriveDestination"),
    "azure": ("Save on Microsoft Azure Blob", "delivery.destinations.azure.AzureBlobDestination"),
    "local": ("Local or NFS folder", "delivery.destinations.local.LocalFolderDestination"),
}

# Preselected when adding a destination.
DEFAULT_KIND = "s3"

KIND_CHOICES = [(kind, label) for kind, (label, _path) in REGISTRY.items()]


def destination_class(kind: str) -> type[Destination]:
    try:
        _label, path = REGISTRY[kind]
    except KeyError:
        raise ValueError(f"Unknown destination kind {kind!r}; choose one of {', '.join(REGISTRY)}") from None
    return import_string(path)


def destination_for(kind: str, config: Mapping[str, Any]) -> Destination:
    return destination_class(kind)(config)


def offered_kinds() -> dict[str, str]:
    """kind -> label of the kinds this portal offers for new destinations."""
    return {
        kind: label
        for kind, (label, _path) in REGISTRY.items()
        if not destination_class(kind).unavailable()
    }


def kinds_where(capability: str) -> list[str]:
    """The kinds whose class has ``capability`` (e.g. "account_service")."""
    return [kind for kind in REGISTRY if getattr(destination_class(kind), capability)]


# The URL modules of the kinds that have views (their classes' ``urls``; SFTP
# and SCP share the SSH one), named here so that loading the URL configuration
# does not import every kind's class and client library (paramiko).
KIND_URLCONFS = ["delivery.destinations.gdrive.urls", "delivery.destinations.ssh.urls"]


def kind_urlconfs() -> list[Any]:
    return [import_module(path) for path in KIND_URLCONFS]


def describe_destination(destination: Any) -> str:
    """Short, secret-free description (``s3://bucket/root``) of a saved
    destination, for pages and the command."""
    try:
        return destination_for(destination.kind, destination.merged_config()).describe()
    except Exception:  # noqa: BLE001 - an incomplete config must not break a page
        return destination.get_kind_display()
