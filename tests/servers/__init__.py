"""Real servers started on loopback for the tests (see each module)."""

from __future__ import annotations

import os

import pytest


def unavailable(reason: str):
    """A real server or system facility the tests need is missing. In CI
    (CI=true) that is a failure — the suite must never pass by skipping its
    real-server tests there; on a developer's machine it is a skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must provide it: `make test` installs what it needs)")
    pytest.skip(reason)
