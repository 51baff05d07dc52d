"""Where a delivered file comes from (the recordings storage) and goes to
(``<room_id>/<conf_num>/<name>`` under the destination's root)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from portal.sizes import human_size
from recordings import store
from recordings.models import RecordingFile, Session

from .destinations.base import LocalFile, TransferError


def remote_path_for(session: Session, name: str) -> str:
    return f"{session.room.room_id}/{session.conf_num}/{name}"


# The delivery log is shown on the Deliveries page: sizes in it read as on every page.
mb = human_size


@contextlib.contextmanager
def local_copy(rf: RecordingFile) -> Iterator[LocalFile]:
    """A LocalFile for ``rf``: the stored file itself when the recording store
    is a local folder, else a temporary copy streamed from the bucket to this
    worker's DATA_DIR/tmp (removed afterwards)."""
    if rf.is_expired:
        raise TransferError(
            f"{rf.name} was removed by retention on {rf.expired_at:%Y-%m-%d}; it cannot be delivered",
            permanent=True,
        )
    with contextlib.ExitStack() as stack:
        # Only the fetch is translated: errors of the caller's block pass as they are.
        try:
            fetched = stack.enter_context(store.fetch(rf.storage_path, sha256=rf.sha256))
        except store.Missing:
            raise TransferError(
                f"{rf.name} is missing from the recording store ({rf.storage_path}); "
                "check the storage or redeliver after restoring it",
                permanent=True,
            ) from None
        except ValueError:
            raise TransferError(
                f"{rf.name} read from the recording store does not match its sha256; retrying"
            ) from None
        yield LocalFile(path=fetched.path, size=rf.size, sha256=rf.sha256 or fetched.sha256 or None)
