"""The key pair of an SFTP or SCP destination."""

from __future__ import annotations

from django.db import transaction

from ...actions.destinations import audit_change
from ...models import DeliveryDestination
from .keypairs import generate_keypair


@transaction.atomic
def do_generate_keypair(
    destination: DeliveryDestination, *, acting_user, ip: str | None = None
) -> str:
    """Give an SSH destination a new ed25519 key (stored encrypted) and return
    the public ``authorized_keys`` line to paste on the server."""
    destination = DeliveryDestination.objects.select_for_update().get(pk=destination.pk)
    private, public = generate_keypair(f"recording-portal-{destination.project.app_id}")
    stored = {k: v for k, v in (destination.secrets or {}).items() if k != "passphrase"}
    destination.secrets = {**stored, "private_key": private}
    destination.config = {**destination.config, "public_key": public}
    destination.save(update_fields=["secrets", "config", "updated_at"])
    audit_change(destination, "key pair generated", acting_user, ip, changed=["private_key (secret)"])
    return public
