from __future__ import annotations

from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from projects.models import RecordingCredentials
from webhooks.models import WebhookEndpoint


def raw_value(model, pk, column):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {model._meta.db_table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_secrets_are_stored_encrypted_not_in_plaintext(world):
    endpoint = WebhookEndpoint.objects.create(
        project=world.project, url="https://example.com/hook", secret="whsec_plainvalue"
    )
    stored = raw_value(WebhookEndpoint, endpoint.pk, "secret")
    assert "plainvalue" not in stored
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).secret == "whsec_plainvalue"
    creds = world.project.recording_credentials
    assert world.created.recording_password not in raw_value(
        RecordingCredentials, creds.pk, "default_password"
    )


def test_rotate_keys_reencrypts_with_the_first_key_and_old_keys_can_go(world, settings, capsys):
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    endpoint = WebhookEndpoint.objects.create(
        project=world.project, url="https://example.com/hook", secret="whsec_rotate_me"
    )
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    # Both keys decrypt before rotation.
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).secret == "whsec_rotate_me"
    call_command("rotate_keys")
    assert "ROTATED=" in capsys.readouterr().out
    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).secret == "whsec_rotate_me"
    assert (
        RecordingCredentials.objects.get(project=world.project).default_password
        == world.created.recording_password
    )


def test_a_removed_key_gives_a_clear_error(world, settings):
    import pytest
    from django.core.exceptions import ImproperlyConfigured

    WebhookEndpoint.objects.create(project=world.project, url="https://e.com/h", secret="whsec_x")
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(ImproperlyConfigured, match="rotate_keys"):
        WebhookEndpoint.objects.get(project=world.project)
