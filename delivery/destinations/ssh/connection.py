"""What SFTP and SCP share: the login form, key handling, host-key pinning and
one authenticated SSH connection per delivery.

Host keys are pinned by fingerprint (``SHA256:<base64>``, as ``ssh-keygen -lf``
prints it) and never accepted on first use: an unknown or changed key raises
``UntrustedHostKey`` before any credential is sent.
"""

from __future__ import annotations

import io
import logging
import socket
from typing import Any

import paramiko
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from portal import egress

from ..base import TransferError, UntrustedHostKey

logger = logging.getLogger(__name__)

# Large windows keep the pipe full on long fat links; packets stay at the
# size OpenSSH accepts by default.
WINDOW_SIZE = 2**27
MAX_PACKET_SIZE = 2**15
CONNECT_TIMEOUT = 20
CHANNEL_TIMEOUT = 120
SHELL_PROBE = "portal-shell-ok"
# How the server's administrator reads the fingerprint to compare.
CHECK_COMMAND = "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub"
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


class InvalidPrivateKey(ValueError):
    """The key text does not parse (or the passphrase is wrong / missing)."""


def load_private_key(text: str, passphrase: str | None = None) -> paramiko.PKey:
    """Parse an OpenSSH or PEM private key given as text."""
    plain, key_class = _decrypted(text, passphrase)
    try:
        return key_class.from_private_key(io.StringIO(plain))
    except paramiko.SSHException:
        raise InvalidPrivateKey("This key could not be read: export it in OpenSSH or PEM format.") from None


def openssh_private_text(text: str, passphrase: str | None = None) -> str:
    """The key unencrypted in OpenSSH's format, for OpenSSH's own client
    (``lanes``: handed over in memory, never written to disk)."""
    return _decrypted(text, passphrase)[0]


def _decrypted(text: str, passphrase: str | None) -> tuple[str, type[paramiko.PKey]]:
    data = text.strip().encode() + b"\n"
    password = passphrase.encode() if passphrase else None
    openssh = b"BEGIN OPENSSH PRIVATE KEY" in data
    loaded: PrivateKeyTypes
    try:
        if openssh:
            loaded = serialization.load_ssh_private_key(data, password=password)
        else:
            loaded = serialization.load_pem_private_key(data, password=password)
    except TypeError:
        if password:
            raise InvalidPrivateKey("This key is not encrypted: leave the passphrase blank.") from None
        raise InvalidPrivateKey("This key is encrypted: give its passphrase.") from None
    except (ValueError, UnsupportedAlgorithm):
        if password:
            raise InvalidPrivateKey("Wrong passphrase for this key (or the key is damaged).") from None
        raise InvalidPrivateKey(
            "Not a private key: paste the whole OpenSSH or PEM private key, "
            "including its BEGIN and END lines."
        ) from None
    key_classes: dict[type, type[paramiko.PKey]] = {
        rsa.RSAPrivateKey: paramiko.RSAKey,
        ed25519.Ed25519PrivateKey: paramiko.Ed25519Key,
        ec.EllipticCurvePrivateKey: paramiko.ECDSAKey,
    }
    key_class = next((cls for base, cls in key_classes.items() if isinstance(loaded, base)), None)
    if key_class is None:
        raise InvalidPrivateKey("Unsupported key type: use an ed25519, ECDSA or RSA key.")
    # Re-encode unencrypted in OpenSSH format, which paramiko reads for every type
    # (it does not read PKCS#8 PEM, for instance).
    plain = loaded.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    return plain, key_class


def connect_transport(config: dict[str, Any]) -> paramiko.Transport:
    """Open, pin-check and authenticate one SSH transport."""
    host, port, user = config["host"], int(config.get("port") or 22), config["username"]
    where = f"{host}:{port}"
    try:
        # Through the egress guard; paramiko gets the vetted socket. No Nagle:
        # each SSH message is one write, and holding a small one back for the
        # peer's delayed ACK cost ~40 ms per remote command (bench/README.md).
        sock = egress.connect(host, port, CONNECT_TIMEOUT, socket_options=NO_DELAY)
    except egress.OutboundRefused as exc:
        raise TransferError(exc.message, permanent=True) from None
    except socket.gaierror:
        raise TransferError(f"Cannot resolve host name {host!r}: check the host") from None
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise TransferError(f"Cannot connect to {where}: {reason}") from None
    transport = paramiko.Transport(
        sock, default_window_size=WINDOW_SIZE, default_max_packet_size=MAX_PACKET_SIZE
    )
    options = transport.get_security_options()
    # AES-GCM needs no separate MAC pass: markedly faster in paramiko.
    options.ciphers = PREFERRED_CIPHERS + tuple(c for c in options.ciphers if c not in PREFERRED_CIPHERS)
    try:
        try:
            transport.start_client(timeout=CONNECT_TIMEOUT)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            # Not the exception's text: it can quote whatever the peer sent
            # (a non-SSH service's banner) and this message reaches pages.
            raise TransferError(
                f"SSH handshake with {where} failed: no SSH server answered there "
                f"({type(exc).__name__})"
            ) from None
        check_host_key(transport, config.get("pinned_fingerprint"))
        _authenticate(transport, config, user, where)
    except BaseException:
        transport.close()
        raise
    return transport


def check_host_key(transport: paramiko.Transport, pinned: str | None) -> str:
    presented = transport.get_remote_server_key().fingerprint
    if not pinned:
        raise UntrustedHostKey(presented, check_command=CHECK_COMMAND, checked_where=" on the server")
    if presented != pinned.strip():
        raise UntrustedHostKey(
            presented, pinned=pinned.strip(), check_command=CHECK_COMMAND, checked_where=" on the server"
        )
    return presented


def _authenticate(transport: paramiko.Transport, config: dict[str, Any], user: str, where: str) -> None:
    rejected = []
    if config.get("private_key"):
        try:
            key = load_private_key(config["private_key"], config.get("passphrase") or None)
        except InvalidPrivateKey as exc:
            raise TransferError(f"The stored private key is unusable: {exc}", permanent=True) from None
        if _try_auth(transport.auth_publickey, user, key, where):
            return
        rejected.append("key")
    if config.get("password"):
        if _try_auth(transport.auth_password, user, config["password"], where):
            return
        rejected.append("password")
    what = f"{' and '.join(rejected)} rejected" if rejected else "no password or key configured"
    raise TransferError(f"SSH login failed for user {user!r} on {where} ({what})", permanent=True)


def _try_auth(method: Any, user: str, credential: Any, where: str) -> bool:
    try:
        method(user, credential)
    except paramiko.BadAuthenticationType as exc:
        allowed = ", ".join(exc.allowed_types) or "none"
        logger.info("SSH server %s does not allow this login method; it allows: %s", where, allowed)
        return False
    except paramiko.AuthenticationException:
        return False
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise TransferError(f"Connection to {where} lost during login ({type(exc).__name__})") from None
    return True
