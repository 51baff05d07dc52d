"""What SFTP and SCP share: connection.py (keys, host-key pinning, one
authenticated transport), destination.py (their base class and the
settings pages' key-pair card), form.py (the login form with "Generate a new
key pair"), keypairs.py, and the key-pair view, action and URL."""

from importlib import import_module
from typing import Any

# Loaded on first use (PEP 562): the URL configuration imports ssh.urls, and
# the web should not load paramiko for that.
_EXPORTS = {
    "InvalidPrivateKey": "connection",
    "check_host_key": "connection",
    "connect_transport": "connection",
    "load_private_key": "connection",
    "SSHDestination": "destination",
    "SecretTextarea": "form",
    "SSHLoginForm": "form",
    "generate_keypair": "keypairs",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)


__all__ = sorted(_EXPORTS)
