"""SSH key pairs for the settings page ("Generate key pair").

Kept apart from connection.py so the web process can offer it without importing
paramiko."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519


def generate_keypair(comment: str = "recording-portal") -> tuple[str, str]:
    """Return (private key in OpenSSH format, public ``authorized_keys`` line)
    of a new ed25519 key pair."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    return private, f"{public} {comment}"
