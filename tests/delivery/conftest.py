"""Fixtures and hooks of the delivery tests."""

import pytest

# The shared destination contract is a plain module imported by the test
# modules: have pytest rewrite its asserts so failures show the values.
pytest.register_assert_rewrite("tests.delivery.contract")
