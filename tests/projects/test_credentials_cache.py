from __future__ import annotations

from unittest import mock

import pytest
from django.contrib.auth.hashers import make_password

from projects import credentials

# Failed checks are remembered in the shared (database) cache.
pytestmark = pytest.mark.django_db


def test_a_repeated_wrong_key_is_checked_with_the_hasher_only_once():
    encoded = make_password("right-key")
    with mock.patch.object(credentials, "check_password", wraps=credentials.check_password) as spy:
        assert not credentials.cached_check("wrong-key", encoded)
        assert not credentials.cached_check("wrong-key", encoded)
        assert credentials.cached_check("right-key", encoded)
        assert credentials.cached_check("right-key", encoded)
    assert spy.call_count == 2


def test_a_new_hash_forgets_what_was_remembered():
    old, new = make_password("first-key"), make_password("second-key")
    assert credentials.cached_check("first-key", old)
    assert not credentials.cached_check("first-key", new)
    assert credentials.cached_check("second-key", new)
