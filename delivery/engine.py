"""Runs one Delivery: claim the row under a lease, push its files, verify each
one, write the manifest last, then announce the result.

The row is the truth. A worker owns a delivery only while its lease holds: it
is taken with a conditional UPDATE (so two workers never both win, on SQLite
and PostgreSQL alike), extended by a heartbeat thread every second, and every
write the worker makes afterwards is conditional on still owning it. A worker
killed mid-transfer simply stops extending the lease; the sweep wakes the row
again once the lease ran out and the next run skips files already verified.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from portal import workers

from .announcements import announce_failure, announce_file_transfer, send_now
from .delivery_log import Scrubber, capped_log, log_entry, unexpected_error
from .destinations import destination_for
from .destinations.base import TransferError
from .file_steps import ERROR_CAP, FileSteps, LeaseLost
from .leases import (
    DB_ERRORS,
    backoff,
    claim,
    drop_broken_connection,
    hand_back,
    lease_seconds,
    new_lease_owner,
    patiently,
)
from .leftovers import discard_leftovers
from .models import DeliveredFile, Delivery

logger = logging.getLogger(__name__)

State = Delivery.State
FileState = DeliveredFile.State
HEARTBEAT_SECONDS = 1.0
# Passes over files added while a run is under way, before yielding.
MAX_ROUNDS = 5


class DeliveryRun(FileSteps):
    """One attempt of one delivery by one worker: the lease and its heartbeat,
    the run loop over the files (``FileSteps``) and the endings."""

    def __init__(self, delivery: Delivery, owner: str):
        self.delivery = delivery
        self.owner = owner
        self.destination = delivery.destination
        self.session = delivery.session
        self.scrub = Scrubber(self.destination.secrets)
        self.log = list(delivery.log or [])
        self.lost = threading.Event()
        self.stop = threading.Event()
        # Serialises this process's DB access between the heartbeat thread and
        # the main thread (SQLite's shared-cache test database needs it).
        self.db_lock = threading.RLock()
        self.state_lock = threading.Lock()
        # Files verified by earlier runs count too: a delivery topped up with
        # files that became ready later must still end at 100 %.
        self.file_bytes: dict[int, int] = dict(delivery.files.values_list("pk", "bytes_sent"))
        self.dirty: dict[int, dict] = {}
        self.sent_this_run = 0
        self.started = time.monotonic()
        self.abort = threading.Event()
        self.announced: int | None = None  # the file_transfer message queued on completion

    # -- bookkeeping shared with the heartbeat ----------------------------------
    def note(self, event: str, message: str) -> None:
        logger.info("delivery %s: %s", self.delivery.pk, message)
        with self.state_lock:
            self.log.append(log_entry(event, message))

    def set_file(self, df: DeliveredFile, **fields) -> None:
        with self.state_lock:
            self.dirty.setdefault(df.pk, {}).update(fields)
            if "bytes_sent" in fields:
                self.file_bytes[df.pk] = fields["bytes_sent"]

    def progress_for(self, df: DeliveredFile):
        def progress(count: int) -> None:
            # A stopping worker lets go at the next chunk (portal/workers.py).
            if self.lost.is_set() or workers.stopping.is_set():
                raise LeaseLost(f"lease of delivery {self.delivery.pk} lost")
            with self.state_lock:
                self.file_bytes[df.pk] = self.file_bytes.get(df.pk, 0) + count
                self.dirty.setdefault(df.pk, {})["bytes_sent"] = self.file_bytes[df.pk]
                self.sent_this_run += count

        return progress

    def speed(self) -> float:
        return self.sent_this_run / max(time.monotonic() - self.started, 1e-3)

    def flush(self, *, beat: bool = False, **extra) -> bool:
        """Write progress, log and per-file states and extend the lease (or
        apply ``extra``, e.g. the final state). Returns False (and sets
        ``lost``) if the row is no longer ours."""
        with self.db_lock:
            if beat and self.stop.is_set():
                return True
            now = timezone.now()
            with self.state_lock:
                dirty, self.dirty = self.dirty, {}
                fields = {
                    "bytes_sent": sum(self.file_bytes.values()),
                    "log": capped_log(self.log),
                    "heartbeat_at": now,
                    "lease_expires_at": now + timedelta(seconds=lease_seconds()),
                    **extra,
                }
                if self.sent_this_run:
                    fields["speed"] = self.speed()
            try:
                with transaction.atomic():
                    # Files first: the final write below may give up the lease.
                    for pk, changes in dirty.items():
                        DeliveredFile.objects.filter(
                            pk=pk, delivery__lease_owner=self.owner
                        ).update(**changes)
                    ours = Delivery.objects.filter(pk=self.delivery.pk, lease_owner=self.owner)
                    if ours.update(**fields) != 1:
                        self.lost.set()
                        return False
            except DB_ERRORS:
                with self.state_lock:  # not written: keep for the next flush
                    for pk, changes in dirty.items():
                        self.dirty[pk] = {**changes, **self.dirty.get(pk, {})}
                raise
        return True

    def heartbeat(self) -> None:
        outage = False
        try:
            while not self.stop.wait(HEARTBEAT_SECONDS):
                try:
                    ours = self.flush(beat=True)
                except DB_ERRORS as exc:
                    # A database restart must not end the heartbeat: the upload
                    # goes on, and a lease nobody extends would let the sweep
                    # hand the same files to a second worker.
                    if not outage:
                        logger.warning("delivery %s: database unavailable (%s); the "
                                       "heartbeat keeps trying", self.delivery.pk, exc)  # fmt: skip
                    outage = True
                    drop_broken_connection()
                    continue
                if outage:
                    logger.info("delivery %s: database back; lease extended", self.delivery.pk)
                    outage = False
                if not ours:
                    logger.warning("delivery %s: lease lost; stopping", self.delivery.pk)
                    return
        except Exception:
            logger.error(
                "delivery %s: heartbeat failed:\n%s",
                self.delivery.pk,
                self.scrub(traceback.format_exc()),
            )
        finally:
            connection.close()

    # -- the work ---------------------------------------------------------------
    def pending_files(self) -> list[DeliveredFile]:
        def query() -> list[DeliveredFile]:
            with self.db_lock:
                return list(
                    self.delivery.files.exclude(state=FileState.VERIFIED)
                    .select_related("recording_file")
                    .order_by("id")
                )

        return patiently(query, f"delivery {self.delivery.pk}")

    def run(self) -> str:
        kind = self.destination.kind
        beat = threading.Thread(
            target=self.heartbeat, name=f"lease-{self.delivery.pk}", daemon=True
        )
        self.note("started", f"attempt {self.delivery.attempts} by {self.owner}")
        beat.start()
        try:
            with destination_for(kind, self.destination.merged_config()) as dest:
                self.note("connected", f"connected to {dest.describe()}")
                for _round in range(MAX_ROUNDS):
                    if files := self.pending_files():
                        self.deliver_files(dest, files)
                    if self.lost.is_set():
                        raise LeaseLost("lease lost")
                    for event, message in dest.log_notes() if files else []:
                        self.note(event, message)
                    settled = patiently(self._settle, f"delivery {self.delivery.pk}")
                    if settled == "more":
                        continue
                    if settled == "waiting":
                        return "waiting for processing"
                    # Complete: the manifest is written once, last, and the
                    # delivery announced once.
                    if self.destination.write_manifest:
                        self.write_manifest(dest)
                    if patiently(
                        lambda: self._finish_if_complete(), f"delivery {self.delivery.pk}"
                    ):
                        return "delivered"
                raise TransferError("files keep being added to this delivery; trying again later")
        except LeaseLost:
            logger.warning("delivery %s: lease lost; another worker carries on", self.delivery.pk)
            return "lease lost"
        except TransferError as exc:
            if exc.needs_reconnect:
                # The settings pages ask for the account to be connected again
                # (Destination.needs_attention).
                from .actions.destinations import do_record_account_error

                do_record_account_error(self.destination, exc.message)
            return self._failed(exc.message, permanent=exc.permanent)
        except Exception as exc:
            logger.error(
                "delivery %s failed unexpectedly:\n%s",
                self.delivery.pk,
                self.scrub(traceback.format_exc()),
            )
            return self._failed(unexpected_error(exc, "delivering"), permanent=False)
        finally:
            self.stop.set()
            beat.join()

    # -- endings ----------------------------------------------------------------
    def _settle(self) -> str:
        """After a pass: ``more`` if files were added meanwhile, ``complete`` if
        every file is verified and the session can get no more, else hand the
        row back as ``waiting`` (not announced; the hand-off wakes it when
        processing is over)."""
        with self.db_lock, transaction.atomic():
            row = (
                Delivery.objects.select_for_update()
                .filter(pk=self.delivery.pk, lease_owner=self.owner)
                .first()
            )
            if row is None or not self.flush():  # the files' states first
                raise LeaseLost("lease lost")
            if row.files.exclude(state=FileState.VERIFIED).exists():
                return "more"
            if row.files_final:
                self.delivery.missing = row.missing  # for the manifest
                return "complete"
            self.stop.set()
            self.note("waiting", "every ready file is verified; the rest follows processing")
            if not self.flush(state=State.WAITING, lease_owner="", lease_expires_at=None,
                              next_attempt_at=None, last_error=""):  # fmt: skip
                raise LeaseLost("lease lost")
        return "waiting"

    def _finish_if_complete(self) -> bool:
        """Mark delivered and queue the file_transfer webhook, unless files
        were added meanwhile (then the caller loops)."""
        with self.db_lock, transaction.atomic():
            row = (
                Delivery.objects.select_for_update()
                .filter(pk=self.delivery.pk, lease_owner=self.owner)
                .first()
            )
            if row is None or not self.flush():
                raise LeaseLost("lease lost")
            if not row.files_final or row.files.exclude(state=FileState.VERIFIED).exists():
                return False
            self.stop.set()
            now = timezone.now()
            if not self.log or self.log[-1]["event"] != "delivered":  # not on a retry
                self.note("delivered", "all files verified; delivery complete")
            done = self.flush(state=State.DELIVERED, finished_at=now, lease_owner="",
                              lease_expires_at=None, next_attempt_at=None, last_error="",
                              manifest_written_at=now if self.destination.write_manifest else None,
                              webhook_sent_at=now)  # fmt: skip
            if not done:
                raise LeaseLost("lease lost")
            # The locked row knows the current generation; session and
            # destination are the ones already loaded.
            row.session, row.destination = self.session, self.destination
            message = announce_file_transfer(row)
            self.announced = message.pk if message is not None else None
        return True

    def _failed(self, reason: str, *, permanent: bool) -> str:
        self.stop.set()
        attempts = self.delivery.attempts
        now = timezone.now()
        give_up = permanent or attempts >= int(settings.DELIVERY_MAX_ATTEMPTS)
        if give_up:
            why = "permanent error" if permanent else f"gave up after {attempts} attempts"
            self.note("failed", f"{reason} ({why})")
            extra: dict[str, Any] = {
                "state": State.FAILED, "finished_at": now, "next_attempt_at": None,
            }
        else:
            retry_at = now + backoff(attempts)
            self.note("retry", f"{reason}; retrying at {retry_at:%Y-%m-%d %H:%M:%S} UTC")
            extra = {"state": State.RETRY_WAIT, "next_attempt_at": retry_at}

        def write() -> bool:
            with self.db_lock, transaction.atomic():
                ok = self.flush(lease_owner="", lease_expires_at=None,
                                last_error=reason[:ERROR_CAP], **extra)  # fmt: skip
                if ok and give_up:
                    announce_failure(self.delivery, reason, attempts)
            return ok

        ok = patiently(write, f"delivery {self.delivery.pk}")
        if not ok:
            return "lease lost"
        if give_up:
            discard_leftovers(self.delivery)
        return "failed" if give_up else "retry_wait"


def run_delivery(delivery_id: int) -> str:
    """Claim and run one delivery. Returns what happened (for the task log)."""
    if workers.stopping.is_set():
        _wake(delivery_id)
        return "left for another worker: this one is stopping"
    owner = new_lease_owner()
    if not claim(delivery_id, owner):
        return "not due or taken by another worker"
    def load() -> Delivery:
        return Delivery.objects.select_related(
            "destination", "session__project", "session__room"
        ).get(pk=delivery_id)

    try:
        # A database restart right after the claim is waited out, not taken
        # for an unloadable row (which would cost an attempt and a backoff).
        delivery = patiently(load, f"delivery {delivery_id}")
        run = DeliveryRun(delivery, owner)
    except Exception as exc:
        # E.g. secrets that no FIELD_ENCRYPTION_KEYS key decrypts: without this
        # the row would stay claimed and be retried every lease, for ever.
        logger.exception("delivery %s cannot be loaded", delivery_id)
        return _unloadable(delivery_id, owner, f"{type(exc).__name__}: {exc}"[:500])
    outcome = run.run()
    if outcome == "delivered" and run.announced is not None and not workers.stopping.is_set():
        send_now(run.announced)  # committed: no broker hop before the consumer hears
    if outcome == "lease lost" and workers.stopping.is_set() and hand_back(delivery_id, owner):
        logger.info("delivery %s: worker stopping; lease handed back", delivery_id)
        _wake(delivery_id)
        return "handed back: the worker is stopping"
    return outcome


def _wake(delivery_id: int) -> None:
    from .scheduling import wake

    wake(delivery_id)


def _unloadable(delivery_id: int, owner: str, reason: str) -> str:
    row = Delivery.objects.filter(pk=delivery_id, lease_owner=owner).values("attempts", "log")
    found = row.first()
    if found is None:
        return "lease lost"
    now = timezone.now()
    give_up = found["attempts"] >= int(settings.DELIVERY_MAX_ATTEMPTS)
    fields = {"state": State.FAILED, "finished_at": now, "next_attempt_at": None} if give_up else {
        "state": State.RETRY_WAIT, "next_attempt_at": now + backoff(found["attempts"])
    }  # fmt: skip
    entry = log_entry("failed" if give_up else "retry", f"cannot start: {reason}")
    row.update(
        lease_owner="", lease_expires_at=None, last_error=f"Cannot start: {reason}"[:ERROR_CAP],
        log=capped_log([*(found["log"] or []), entry]), **fields,
    )  # fmt: skip
    return str(fields["state"])
