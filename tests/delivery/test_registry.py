"""The registry of destination kinds (delivery/destinations/__init__.py)."""

from __future__ import annotations

import pytest

from delivery.destinations import KIND_CHOICES, REGISTRY, destination_class, kinds_where
from delivery.destinations.base import Destination, DestinationForm


@pytest.mark.parametrize("kind", list(REGISTRY))
def test_every_kind_has_a_class_with_its_kind_label_and_form(kind):
    cls = destination_class(kind)
    assert issubclass(cls, Destination) and cls.kind == kind
    assert issubclass(cls.form_class, DestinationForm)
    assert (kind, REGISTRY[kind][0]) in KIND_CHOICES


def test_an_unknown_kind_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown destination kind 'dropbox'"):
        destination_class("dropbox")


def test_capabilities_come_from_the_classes_not_from_kind_checks():
    assert kinds_where("uses_ssh_keys") == ["sftp", "scp"]
    assert kinds_where("connects_google_account") == ["gdrive"]
