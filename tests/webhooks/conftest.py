"""Fixtures of the webhook tests: a real HTTP receiver on loopback and a
project whose webhook points at it."""

from __future__ import annotations

import pytest
from django_q.conf import Conf

from tests.servers import webhook_receiver as receivers
from webhooks.actions import do_configure_webhook

# Assigned rather than imported by name: ruff reports fixture parameters that
# shadow an imported fixture.
webhook_receiver = receivers.webhook_receiver


@pytest.fixture
def sync_queue(monkeypatch):
    """django-q2 runs tasks in-process, as the cluster would."""
    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture
def hook(world, webhook_receiver):
    change = do_configure_webhook(world.project, url=webhook_receiver.url, acting_user=None)
    return change
