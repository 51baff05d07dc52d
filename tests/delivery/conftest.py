"""Fixtures shared by the delivery tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def local_roots(settings, tmp_path):
    """Local folder destinations are an operator feature: allow the test's own
    tmp folder (DELIVERY_LOCAL_ROOTS) and nothing else. DATA_DIR lies inside it
    (tests/conftest.py), so the rule that keeps deliveries out of DATA_DIR holds."""
    settings.DELIVERY_LOCAL_ROOTS = [str(tmp_path)]
    return tmp_path
