"""Processing of an ended session: merge the individual recordings into one
``transcoded.mp4`` with a poster, record durations and sizes, then announce the
result (``transcoded`` webhook) and hand every file type to delivery.

Failures are kept on the session (state ``failed`` + ``processing_error``) and
logged; they are never swallowed silently. Every run is counted on the session
(``processing_attempts``): a run that never finishes (worker killed, task
timeout) is queued again by the stalled-processing sweep, at most
MAX_PROCESSING_ATTEMPTS times in all; then the session fails and delivery goes
on with the files it has."""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from . import lifecycle, media, store
from .actions.sessions import session_folder
from .events import queue_session_event
from .models import RecordingFile, Session

log = logging.getLogger(__name__)

TRANSCODED_NAME = "transcoded.mp4"
POSTER_NAME = "transcoded.jpg"
MAX_PROCESSING_ATTEMPTS = 3


def _work_dir() -> str:
    return tempfile.mkdtemp(dir=store.scratch_dir("processing"))


def process_session(session_id: int) -> Session:
    """Process an ended session once; a session not in ``processing`` is left as is."""
    session = _start_attempt(session_id)
    if session.state != Session.State.PROCESSING:
        return session
    individual = list(session.files.filter(type=RecordingFile.Type.INDIVIDUAL).order_by("id"))
    if not individual:
        return finish_without_media(session)
    workdir = _work_dir()
    try:
        with contextlib.ExitStack() as fetched:
            # On a bucket the inputs are copied to the worker's own disk first.
            inputs = [
                str(fetched.enter_context(store.fetch(f.storage_path, workdir=Path(workdir), sha256=f.sha256)).path)
                for f in individual
            ]
            return _process(session, inputs, Path(workdir), participants=len(individual))
    except media.MediaError as exc:
        return _fail(session, exc.message)
    except Exception as exc:
        log.exception("processing session %s failed", session.conf_num)
        _fail(session, f"Processing failed unexpectedly: {exc.__class__.__name__}: {exc}")
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _process(session: Session, inputs: list[str], workdir: Path, *, participants: int) -> Session:
    # Checked again here: files stored before the door checked them, or
    # before MEDIA_MAX_SECONDS was lowered, must not encode for hours.
    infos = [media.probe(path) for path in inputs]
    longest = max(info.duration for info in infos)
    if longest > settings.MEDIA_MAX_SECONDS:
        return _fail(
            session,
            f"A recording lasts {longest / 3600:.1f} h, longer than the limit of "
            f"{settings.MEDIA_MAX_SECONDS / 3600:.1f} h (MEDIA_MAX_SECONDS); no composite "
            "was made.",
        )
    output = workdir / TRANSCODED_NAME
    info = media.make_composite(inputs, output, infos=infos)
    poster = workdir / POSTER_NAME
    media.make_poster(output, poster)
    return _finish(session, (output, poster, info.duration), participants=participants)


def _start_attempt(session_id: int) -> Session:
    """Count a run of processing; past the limit, fail the session instead."""
    with transaction.atomic():
        session = (
            Session.objects.select_for_update().select_related("project", "room").get(pk=session_id)
        )
        if session.state != Session.State.PROCESSING:
            log.info("session %s is %s; nothing to process", session.conf_num, session.state)
            return session
        if session.processing_attempts >= MAX_PROCESSING_ATTEMPTS:
            return give_up(session)
        session.processing_attempts += 1
        # processed_at marks the start of the latest run while processing, so
        # the stalled-processing sweep gives every run its full time.
        session.processed_at = timezone.now()
        session.save(update_fields=["processing_attempts", "processed_at"])
        return session


def give_up(session: Session) -> Session:
    """Fail a session whose processing runs never finished."""
    return _fail(
        session,
        f"Processing did not finish in {session.processing_attempts} attempts (each was stopped "
        "before the end: worker timeout, restart or out of memory); the recordings are "
        "delivered without a composite.",
    )


def _fail(session: Session, message: str) -> Session:
    """Mark the session failed with the first line of ``message`` (the portal's
    words; the rest, ffmpeg's own output, goes to the log only) and hand every
    file it has to delivery."""
    log.error("processing of session %s failed: %s", session.conf_num, message)
    with transaction.atomic():
        session = (
            Session.objects.select_for_update().select_related("project", "room").get(pk=session.pk)
        )
        session.state = Session.State.FAILED
        session.processing_error = message.strip().split("\n", 1)[0][:1000]
        session.processed_at = timezone.now()
        session.participant_count = session.files.filter(type=RecordingFile.Type.INDIVIDUAL).count()
        session.total_size = session.files.aggregate(total=Sum("size"))["total"] or 0
        session.save(
            update_fields=[
                "state", "processing_error", "processed_at", "participant_count", "total_size",
            ]
        )  # fmt: skip
        session_id = session.pk
        transaction.on_commit(
            lambda: lifecycle.files_ready(session_id, lifecycle.Event.PROCESSING_FAILED)
        )
    return session


def finish_without_media(session: Session) -> Session:
    """A session with no individual recording has nothing to process: ready."""
    return _finish(session, None)


def _store_outputs(result, folder: str, stored: list[str]) -> tuple[store.Stored, str]:
    """Put the composite and its poster into the store under ``folder``;
    ``stored`` collects their names, for removal if the session is not kept."""
    output, poster, _duration = result
    poster_path = store.put(f"{folder}/{POSTER_NAME}", poster, move=True).name
    stored.append(poster_path)
    video = store.put(f"{folder}/{TRANSCODED_NAME}", output, move=True)
    stored.append(video.name)
    return video, poster_path


def _delete(names: list[str]) -> None:
    for name in names:
        store.delete(name)


def _finish(session: Session, result, *, participants: int = 0) -> Session:
    stored: list[str] = []
    outputs: tuple[store.Stored, str] | None = None
    try:
        if result is not None and not store.is_local():
            # A bucket put lasts as long as the upload: done before the session
            # row is locked, under a folder of its own (a local store renames).
            outputs = _store_outputs(result, f"{session_folder(session)}/{uuid.uuid4().hex}", stored)
        with transaction.atomic():
            session = (
                Session.objects.select_for_update()
                .select_related("project", "room")
                .get(pk=session.pk)
            )
            if session.state != Session.State.PROCESSING:
                transaction.on_commit(lambda: _delete(stored))  # put for nothing
                return session
            duration = None
            if result is not None:
                duration = result[2]
                if outputs is None:
                    outputs = _store_outputs(result, session_folder(session), stored)
                video, poster_path = outputs
                transcoded = RecordingFile.objects.create(
                    session=session,
                    project=session.project,
                    type=RecordingFile.Type.TRANSCODED,
                    name=TRANSCODED_NAME,
                    size=video.size,
                    sha256=video.sha256,
                    storage_path=video.name,
                    content_type="video/mp4",
                    duration_seconds=duration,
                    poster_path=poster_path,
                )
                queue_session_event(
                    session, "transcoded", [transcoded],
                    dedupe_key=f"session:{session.pk}:transcoded",
                )  # fmt: skip
            session.state = Session.State.READY
            session.processing_error = ""
            session.processed_at = timezone.now()
            session.duration_seconds = duration
            session.participant_count = participants
            session.total_size = session.files.aggregate(total=Sum("size"))["total"] or 0
            session.save(
                update_fields=[
                    "state", "processing_error", "processed_at", "duration_seconds",
                    "participant_count", "total_size",
                ]
            )  # fmt: skip
            session_id = session.pk
            transaction.on_commit(
                lambda: lifecycle.files_ready(session_id, lifecycle.Event.PROCESSING_DONE)
            )
    except BaseException:
        _delete(stored)
        raise
    log.info("session %s processed: %s", session.conf_num, session.state)
    return session
