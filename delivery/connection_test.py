"""The "Test connection" button: write a probe file under a destination's root and
remove it (the settings pages and ``manage.py delivery test``)."""

from __future__ import annotations

import logging
import traceback

from .delivery_log import Scrubber, unexpected_error
from .destinations import destination_for
from .destinations.base import TransferError
from .models import DeliveryDestination

logger = logging.getLogger(__name__)


def check_connection(destination: DeliveryDestination) -> str:
    """Connect, write a probe file under the root and remove it. Returns the
    destination's message; raises TransferError with the exact reason."""
    try:
        with destination_for(destination.kind, destination.merged_config()) as dest:
            return dest.check()
    except TransferError:
        raise
    except Exception as exc:
        logger.error(
            "testing destination %s failed:\n%s",
            destination.pk,
            Scrubber(destination.secrets)(traceback.format_exc()),
        )
        raise TransferError(unexpected_error(exc, "testing the connection")) from None
