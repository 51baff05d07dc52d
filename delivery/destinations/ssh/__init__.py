"""What SFTP and SCP share: connection.py (keys, host-key pinning, one
authenticated transport), destination.py (their base class and the
settings pages' key-pair card), form.py (the login form with "Generate a new
key pair"), keypairs.py, and the key-pair view, action and URL."""

from .connection import InvalidPrivateKey, check_host_key, connect_transport, load_private_key
from .destination import SSHDestination
from .form import SecretTextarea, SSHLoginForm
from .keypairs import generate_keypair

__all__ = [
    "InvalidPrivateKey",
    "SSHDestination",
    "SSHLoginForm",
    "SecretTextarea",
    "check_host_key",
    "connect_transport",
    "generate_keypair",
    "load_private_key",
]
