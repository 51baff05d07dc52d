"""SFTP (paramiko) with pinned host keys: destination.py, put.py (the data
path: pipelined and parallel writes that can resume). Shares the SSH login
with SCP (delivery/destinations/ssh/)."""

from .destination import SIZE_ONLY, VERIFIED_REMOTELY, SFTPDestination
from .put import (
    AHEAD,
    PARALLEL_MIN,
    REQUEST_PACKETS,
    STREAM_BLOCK,
    STREAMS,
    fit_requests,
    packets_per_request,
    server_write_limit,
)

__all__ = [
    "AHEAD",
    "PARALLEL_MIN",
    "REQUEST_PACKETS",
    "SIZE_ONLY",
    "STREAMS",
    "STREAM_BLOCK",
    "VERIFIED_REMOTELY",
    "SFTPDestination",
    "fit_requests",
    "packets_per_request",
    "server_write_limit",
]
