"""S3 clients are made once per worker process and settings
(delivery/destinations/clients.py): two deliveries to the same bucket share
one; a changed secret, endpoint or region gets a new one; the cache never holds
a secret, even hashed without a salt."""

from __future__ import annotations

import hashlib
import threading

import pytest

from delivery import engine, scheduling
from delivery.destinations import clients
from delivery.destinations.s3 import S3Destination
from delivery.models import Delivery, DeliveryDestination
from tests.delivery.engine_support import make_session
from tests.servers import moto_s3

s3_server = moto_s3.s3_server
s3 = moto_s3.s3


@pytest.fixture
def made(monkeypatch):
    """Every boto3 client the destinations create, in order."""
    created: list[dict] = []
    real = clients.boto3_client

    def counting(service, **kwargs):
        created.append(kwargs)
        return real(service, **kwargs)

    monkeypatch.setattr(clients, "_clients", clients.OrderedDict())
    monkeypatch.setattr("delivery.destinations.s3.destination.boto3_client", counting)
    return created


def bucket(project, server, name="bucket", **changes) -> DeliveryDestination:
    full = {**server.destination_config(root=f"cache/{name}"), **changes}
    secret_keys = ("access_key_id", "secret_access_key")
    return DeliveryDestination.objects.create(
        project=project, name=name, kind="s3", file_types=["transcoded", "chat"],
        config={k: v for k, v in full.items() if k not in secret_keys},
        secrets={k: full[k] for k in secret_keys},
    )  # fmt: skip


def deliver(project) -> list[str]:
    session = make_session(project, {"chat.json": ("chat", b'{"m": []}')})
    scheduling.schedule_deliveries_for_session(session.pk)
    return [engine.run_delivery(d.pk) for d in Delivery.objects.filter(session=session)]


@pytest.mark.django_db(transaction=True)
def test_two_deliveries_in_one_process_create_one_client(world, s3, made):
    bucket(world.project, s3)
    assert deliver(world.project) == deliver(world.project) == ["delivered"]
    assert len(made) == 1


@pytest.mark.django_db(transaction=True)
def test_a_changed_secret_creates_a_new_client(world, s3, made):
    destination = bucket(world.project, s3)
    right = destination.secrets["secret_access_key"]
    assert deliver(world.project) == ["delivered"]
    # moto checks the signature: the wrong secret is really used (a client
    # kept from before would still succeed) and the delivery fails.
    destination.secrets = {**destination.secrets, "secret_access_key": "rotated-wrong-secret"}
    destination.save()
    assert deliver(world.project) == ["failed"]
    destination.secrets = {**destination.secrets, "secret_access_key": right}
    destination.save()
    assert deliver(world.project) == ["delivered"]
    assert [m["aws_secret_access_key"] for m in made] == [right, "rotated-wrong-secret"]


def test_the_same_settings_share_a_client_and_other_settings_do_not(s3, made):
    config = s3.destination_config(root="cache")
    first = S3Destination(config).client
    assert S3Destination(dict(config)).client is first
    assert S3Destination({**config, "region": "eu-west-1"}).client is not first
    assert S3Destination({**config, "endpoint_url": config["endpoint_url"] + "/"}).client is not first
    assert S3Destination({**config, "access_key_id": "other"}).client is not first
    assert len(made) == 4


def test_keys_reveal_no_secret(s3, made):
    secret = s3.destination_config()["secret_access_key"]
    assert S3Destination(s3.destination_config(root="cache")).client is not None
    (key,) = clients._clients
    assert secret not in key
    assert hashlib.sha256(secret.encode()).hexdigest() not in key
    assert key.startswith("s3:")


def test_threads_asking_at_once_get_one_client(s3, made):
    config = s3.destination_config(root="cache")
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(S3Destination(config).client)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1 and len({id(c) for c in got}) == 1


def test_the_cache_is_bounded(s3, made, monkeypatch):
    monkeypatch.setattr(clients, "MAX_CLIENTS", 3)
    config = s3.destination_config(root="cache")
    for n in range(5):
        assert S3Destination({**config, "access_key_id": f"key{n}"}).client is not None
    assert len(clients._clients) == 3
