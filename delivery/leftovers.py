"""What half-sent uploads leave at a destination: an unfinished S3 multipart
upload, Azure's uncommitted blocks, an FTP/SFTP/SCP temporary file. A run keeps
them (in the file's ResumePoint) so the next one continues; they are removed
when the delivery gives up, or when a person sends it again from scratch."""

from __future__ import annotations

import logging
from typing import Any

from .destinations import destination_for
from .destinations.base import Destination, ResumePoint
from .local_files import remote_path_for
from .models import DeliveredFile, Delivery

logger = logging.getLogger(__name__)

FRESH = "discard"  # marks a state to be removed before the file is sent again


def mark_for_fresh_start(delivery: Delivery) -> None:
    """A redelivery starts every file over: the run that sends a file again
    first removes what an earlier run left (it holds the connection, so no
    network call happens in the caller's transaction)."""
    for df in delivery.files.all():
        if df.resume_state and not df.resume_state.get(FRESH):
            df.resume_state = {**df.resume_state, FRESH: True}
            df.save(update_fields=["resume_state"])


def start_point(dest: Destination, remote_path: str, point: ResumePoint) -> ResumePoint:
    """``point``, or an empty one once what it named was removed (redelivery)."""
    if point.state.get(FRESH):
        state = {k: v for k, v in point.state.items() if k != FRESH}
        _discard_quietly(dest, remote_path, state)
        point.save({})
    return point


def discard_leftovers(delivery: Delivery) -> int:
    """Remove every file's leftovers at the destination (the delivery gave
    up). Best effort: an unreachable destination keeps them (S3 lifecycle
    rules, Azure's one-week expiry of uncommitted blocks). Returns how many
    files had some."""
    files = [df for df in delivery.files.select_related("recording_file") if df.resume_state]
    if not files:
        return 0
    destination = delivery.destination
    try:
        with destination_for(destination.kind, destination.merged_config()) as dest:
            for df in files:
                state = {k: v for k, v in df.resume_state.items() if k != FRESH}
                _discard_quietly(dest, remote_path_for(delivery.session, df.recording_file.name), state)
                DeliveredFile.objects.filter(pk=df.pk).update(resume_state={})
    except Exception as exc:
        # Its type only: the text may quote a remote reply or a secret.
        logger.warning("delivery %s: could not remove half-sent uploads (%s)", delivery.pk,
                       type(exc).__name__)  # fmt: skip
    return len(files)


def _discard_quietly(dest: Destination, remote_path: str, state: dict[str, Any]) -> None:
    try:
        dest.discard(remote_path, state)
    except Exception as exc:
        logger.warning("could not remove a half-sent upload of %s (%s)", remote_path,
                       type(exc).__name__)  # fmt: skip
