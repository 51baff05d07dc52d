from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]


def test_check_deploy_is_clean_with_the_documented_production_settings(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST")},
        "DEBUG": "false",
        "DATA_DIR": str(tmp_path),
        "SECRET_KEY": "x" * 20 + "-production-secret-key-of-sufficient-length-" + "y" * 20,
        "FIELD_ENCRYPTION_KEYS": "dGVzdC1vbmx5LWtleS1kby1ub3QtdXNlLWl0LTAwMDA=",
        "PUBLIC_BASE_URL": "https://recordings.example.com",
        "ALLOWED_HOSTS": "recordings.example.com",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_pages_carry_a_strict_content_security_policy(client, world):
    client.force_login(world.alice)
    response = client.get(reverse("projects:detail", args=[world.app_id]))
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp


def test_forms_require_csrf_tokens(world):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(world.alice)
    response = client.post(reverse("projects:regenerate_app_key", args=[world.app_id]))
    assert response.status_code == 403


def test_login_is_throttled_after_repeated_failures(client, world, settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        client.post(reverse("login"), {"username": "alice", "password": "wrong"})
    response = client.post(reverse("login"), {"username": "alice", "password": "correct horse battery staple"})
    assert response.status_code == 429
    assert "Only your address is paused" in response.content.decode()


def test_basic_headers_are_read_in_one_place():
    import base64

    import pytest

    from portal.basic_auth import MalformedCredentials, basic_credentials

    token = base64.b64encode("rëc:pa:ss".encode()).decode()
    assert basic_credentials(f"Basic {token}") == ("rëc", "pa:ss")
    assert basic_credentials("Bearer abc") is None and basic_credentials("") is None
    with pytest.raises(MalformedCredentials):
        basic_credentials("Basic " + base64.b64encode(b"\xff\xfe").decode())
