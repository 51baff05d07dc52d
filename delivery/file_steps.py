"""The file step of a delivery run: each file is verified (skipped when
already at the destination), uploaded from where an earlier run left off,
and verified again; the manifest goes last. ``DeliveryRun`` (engine.py)
owns the lease and the bookkeeping these steps report to."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.utils import timezone

from .destinations.base import Destination, ProgressCallback, ResumePoint, TransferError
from .leases import DB_ERRORS, patiently
from .leftovers import start_point
from .local_files import local_copy, mb, remote_path_for
from .manifest import manifest_file
from .models import DeliveredFile, Delivery

logger = logging.getLogger(__name__)

FileState = DeliveredFile.State
ERROR_CAP = 2000


class LeaseLost(Exception):
    """Someone else took the delivery (our lease ran out, or a person asked for
    a redelivery); stop without writing anything."""


class FileSteps:
    """The file step of ``DeliveryRun``, which sets these attributes and
    implements the bookkeeping methods below."""

    delivery: Delivery
    session: Any
    owner: str
    lost: threading.Event
    abort: threading.Event
    db_lock: Any

    def note(self, event: str, message: str) -> None:
        raise NotImplementedError

    def set_file(self, df: DeliveredFile, **fields: Any) -> None:
        raise NotImplementedError

    def progress_for(self, df: DeliveredFile) -> ProgressCallback:
        raise NotImplementedError

    def resume_point(self, df: DeliveredFile) -> ResumePoint:
        """The file's saved resume state; a new one is written to its row at
        once (a worker killed before the next heartbeat must not lose it)."""

        def save(state: dict[str, Any]) -> None:
            def write() -> None:
                with self.db_lock:
                    # Only while ours: a run that lost its lease must not
                    # overwrite what a redelivery marked for removal.
                    DeliveredFile.objects.filter(
                        pk=df.pk, delivery__lease_owner=self.owner
                    ).update(resume_state=state)

            try:
                patiently(write, f"delivery {self.delivery.pk}")
            except DB_ERRORS as exc:
                # A resume point is a shortcut, not the truth: the upload goes
                # on, and a later run resumes from an older point (or byte 0).
                logger.warning("delivery %s: resume point not saved (%s)", self.delivery.pk, exc)
                return
            df.resume_state = state

        def note(message: str) -> None:
            self.note("resume", f"{df.recording_file.name}: {message}")

        return ResumePoint(df.resume_state, save=save, note=note)

    def deliver_file(self, dest: Destination, df: DeliveredFile) -> None:
        rf = df.recording_file
        remote = remote_path_for(self.session, rf.name)
        with local_copy(rf) as local:
            if dest.verify(local, remote):
                self.set_file(df, state=FileState.VERIFIED, bytes_sent=rf.size,
                              remote_path=dest.final_path(remote),
                              verified_at=timezone.now(), error="")  # fmt: skip
                self.note("skipped", f"{rf.name} is already at the destination and intact")
                return
            self.set_file(df, state=FileState.UPLOADING, bytes_sent=0, error="")
            started = time.monotonic()
            point = start_point(dest, remote, self.resume_point(df))
            dest.upload(local, remote, self.progress_for(df), point)
            seconds = time.monotonic() - started
            if not dest.verify(local, remote):
                raise TransferError(
                    f"{rf.name} does not match after upload (size or checksum differ); "
                    "it will be sent again"
                )
        self.set_file(df, state=FileState.VERIFIED, bytes_sent=rf.size, seconds=seconds,
                      remote_path=dest.final_path(remote), verified_at=timezone.now(),
                      resume_state={})  # fmt: skip
        rate = rf.size / max(seconds, 1e-3)
        self.note(
            "uploaded",
            f"uploaded and verified {rf.name} ({mb(rf.size)} in {seconds:.1f} s, {mb(rate)}/s)",
        )

    def deliver_files(self, dest: Destination, files: list[DeliveredFile]) -> None:
        """Deliver ``files`` (``parallel_files`` at a time). A transient error of
        one file does not stop the others, so a retry has less to do; a
        permanent error or a lost lease stops everything not yet started."""
        self.abort = threading.Event()
        dest.expect([df.recording_file.size for df in files])
        workers = max(1, min(int(getattr(dest, "parallel_files", 1) or 1), len(files)))
        with ThreadPoolExecutor(workers, thread_name_prefix=f"delivery-{self.delivery.pk}") as pool:
            futures = [pool.submit(self._guarded, dest, df) for df in files]
        errors = [e for f in futures if not f.cancelled() and (e := f.exception()) is not None]
        stops = [e for e in errors if not isinstance(e, TransferError) or e.permanent]
        if stops or errors:
            raise (stops or errors)[0]

    def _guarded(self, dest: Destination, df: DeliveredFile) -> None:
        if self.lost.is_set():
            raise LeaseLost("lease lost")
        if self.abort.is_set():
            return
        try:
            self.deliver_file(dest, df)
        except TransferError as exc:
            self.set_file(df, state=FileState.FAILED, error=exc.message[:ERROR_CAP])
            if exc.permanent:
                self.abort.set()
            raise
        except BaseException:
            self.abort.set()
            raise

    def write_manifest(self, dest: Destination) -> None:
        def query() -> list[DeliveredFile]:
            with self.db_lock:
                return list(self.delivery.files.select_related("recording_file").order_by("id"))

        files = patiently(query, f"delivery {self.delivery.pk}")
        remote = remote_path_for(self.session, "manifest.json")
        with manifest_file(self.delivery, files) as local:
            if not dest.verify(local, remote):
                dest.upload(local, remote, lambda _n: None)
                if not dest.verify(local, remote):
                    raise TransferError("manifest.json does not match after upload; retrying")
        self.note("manifest", f"wrote manifest.json ({len(files)} files) last")
