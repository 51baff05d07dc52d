"""Real servers started on loopback for the tests (see each module)."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest


def unavailable(reason: str):
    """A real server or system facility the tests need is missing. In CI
    (CI=true) that is a failure — the suite must never pass by skipping its
    real-server tests there; on a developer's machine it is a skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must provide it: `make test` installs what it needs)")
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(
    port: int,
    process: subprocess.Popen | None = None,
    what: str = "server",
    timeout: float = 30,
) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port``; fail
    early if ``process`` (the server being started) exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")
