"""What SFTP and SCP share: connection.py (keys, host-key pinning, one
authenticated transport), destination.py (their base class and the
settings pages' key-pair card), form.py (the login form with "Generate a new
key pair"), keypairs.py, and the key-pair view, action and URL."""

from ..base import lazy_exports

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

__getattr__ = lazy_exports(__name__, _EXPORTS)


__all__ = sorted(_EXPORTS)
