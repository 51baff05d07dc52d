"""Secure copy (SCP) with pinned host keys. Shares the SSH login with SFTP
(delivery/destinations/ssh/)."""

from .destination import ATOMIC, PLAIN, READ_BACK, SIZE_ONLY, VERIFIED_REMOTELY, SCPDestination

__all__ = ["ATOMIC", "PLAIN", "READ_BACK", "SIZE_ONLY", "VERIFIED_REMOTELY", "SCPDestination"]
