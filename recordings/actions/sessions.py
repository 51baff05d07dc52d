"""Sessions as the ingest API (the media server's side) changes them:
start, recording state, file storage and the end of a session. Live
recording and streaming, which need a recorder slot, are
``recordings.actions.recorders``. The media server acts, not a person:
callers pass ``acting_user=None`` and nothing here is audited.

Every transition locks the session row (select_for_update) so concurrent calls
see each other's state. Errors are IngestError with the platform's result code."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from uuid import uuid4

from django.db import transaction
from django.http import Http404
from django.utils import timezone

from projects import quotas
from projects.models import Project, Room

from .. import admission, lifecycle, store
from ..events import queue_session_event
from ..models import RecordingFile, Session
from ..uploads import raise_for_disk_error
from . import recorders

log = logging.getLogger(__name__)

State = Session.RecordingState
NAME_MAX = 120
RESERVED_NAMES = {"transcoded.mp4", "transcoded.jpg"}
DEFAULT_NAMES = {
    "individual": "individual.mp4",
    "live": "live.mp4",
    "chat": "chat.json",
    "metadata": "metadata.json",
}
UPLOAD_TYPES = tuple(DEFAULT_NAMES)
_UNSAFE = re.compile(r"[^\w.\-+@()]")


@dataclass
class IngestError(Exception):
    result: int
    message: str
    status: int = 409

    def __str__(self) -> str:
        return self.message


def get_room(project: Project, room_id: str) -> Room:
    room = Room.objects.filter(project=project, room_id=room_id).first()
    if room is None:
        raise Http404(f"No room {room_id} in this project")
    return room


def get_session(project: Project, conf_num: str, *, lock: bool = False) -> Session:
    sessions = Session.objects.select_related("room", "project")
    if lock:
        sessions = sessions.select_for_update()
    session = sessions.filter(project=project, conf_num=conf_num).first()
    if session is None:
        raise Http404(f"No session {conf_num} in this project")
    return session


def refuse_if_ended(session: Session) -> None:
    if session.is_ended:
        raise IngestError(1009, f"Session {session.conf_num} has ended; start a new session.")


@transaction.atomic
def do_start_session(project: Project, room_id: str, *, acting_user) -> Session:
    room = get_room(project, room_id)
    try:
        quotas.check_live_sessions_quota(project)
    except quotas.QuotaExceeded as exc:
        raise IngestError(exc.result, exc.message, exc.status) from None
    if room.auto_live_recording:
        recorders.lock_pool()  # before any session row, as every recorder action
    session = Session.objects.create(
        project=project, room=room, recording=State.ON if room.auto_recording else State.OFF
    )
    if room.auto_live_recording:
        # Takes a recorder slot like any live recording, or waits for one.
        config = {"url": room.settings["live_recording"]["url"]}
        recorders.start_with_session(session, "live_recording", config)
    return session


def refuse_if_over_storage_quota(project: Project) -> None:
    """Before an upload is read: a project whose store is already full gets
    its 403 at once instead of after streaming gigabytes."""
    with transaction.atomic():
        try:
            quotas.check_storage_quota(project, 0)
        except quotas.QuotaExceeded as exc:
            raise IngestError(exc.result, exc.message, exc.status) from None


def check_role(role, code: int, what: str) -> None:
    if role is not None and role != "moderator":
        raise IngestError(code, f"Only a moderator may {what} (role was {role!r}).", 403)


@transaction.atomic
def do_start_recording(
    project: Project, conf_num: str, *, role: str | None = None, acting_user
) -> Session:
    session = get_session(project, conf_num, lock=True)
    check_role(role, 5007, "start recording")
    refuse_if_ended(session)
    if session.recording == State.STARTING:
        raise IngestError(5033, "Recording is starting already; wait for it.")
    if session.recording in (State.ON, State.STOPPING):
        raise IngestError(5034, "Recording has already started.")
    session.recording = State.ON
    session.save(update_fields=["recording"])
    return session


@transaction.atomic
def do_stop_recording(
    project: Project, conf_num: str, *, role: str | None = None, acting_user
) -> Session:
    session = get_session(project, conf_num, lock=True)
    check_role(role, 5008, "stop recording")
    refuse_if_ended(session)
    if session.recording == State.STOPPING:
        raise IngestError(5035, "Recording is stopping already; wait for it.")
    if session.recording in (State.OFF, State.STARTING):
        raise IngestError(5036, "Recording was not started, so it cannot be stopped.")
    session.recording = State.OFF
    session.save(update_fields=["recording"])
    return session


# --- files ---------------------------------------------------------------------


def clean_file_name(raw: str, file_type: str) -> str:
    """A safe file name: no folders, no control characters, at most NAME_MAX long."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())
    name = _UNSAFE.sub("_", name.strip()).lstrip(".")
    if not name.strip("._"):
        name = DEFAULT_NAMES[file_type]
    stem, ext = os.path.splitext(name)
    ext = ext[:16]
    return stem[: NAME_MAX - len(ext)] + ext


def session_folder(session: Session) -> str:
    return f"{session.project.app_id}/{session.room.room_id}/{session.conf_num}"


def unique_name(session: Session, name: str) -> str:
    """``name``, or ``name-2.ext``, ``name-3.ext``... not yet used in the session."""
    taken = set(session.files.values_list("name", flat=True)) | RESERVED_NAMES
    stem, ext = os.path.splitext(name)
    candidate, counter = name, 1
    while candidate in taken or store.exists(f"{session_folder(session)}/{candidate}"):
        counter += 1
        suffix = f"-{counter}"
        candidate = stem[: NAME_MAX - len(ext) - len(suffix)] + suffix + ext
    return candidate


def store_upload(name: str, source_path: str, *, move: bool, sha256: str) -> str:
    """Put a checked upload into the recording store under ``name``."""
    try:
        return store.put(name, source_path, move=move, sha256=sha256).name
    except FileExistsError:
        raise IngestError(1009, f"{name} exists in the recording store already; retry.") from None
    except OSError as exc:
        raise_for_disk_error(exc)
        raise


def do_store_file(
    project: Project,
    conf_num: str,
    *,
    file_type: str,
    source_path: str,
    original_name: str,
    size: int,
    sha256: str,
    participant: str = "",
    move: bool = True,
    acting_user,
) -> RecordingFile:
    """Keep an uploaded file (already hashed) as a RecordingFile of the session,
    once it passed the checks at the door (``recordings.admission``: its content
    type is the probe's, never the client's). Nothing stays in the store if it is
    refused or the database row cannot be written. On a local store the file is
    renamed to ``<session folder>/<name>`` under the session lock; a bucket gets
    it before the lock, at ``<session folder>/<random hex>/<cleaned name>``
    (``storage_path`` says where; ``name`` is what people and deliveries see)."""
    if file_type not in UPLOAD_TYPES:
        raise IngestError(1001, f"type must be one of {', '.join(UPLOAD_TYPES)}", 400)
    # Probing takes a moment: done before the session row is locked.
    session = get_session(project, conf_num)
    refuse_if_ended(session)
    try:
        admitted = admission.admit(session, file_type, source_path)
    except admission.Refused as exc:
        raise IngestError(exc.result, exc.message, exc.status) from None
    cleaned = clean_file_name(
        admission.name_for(clean_file_name(original_name, file_type), admitted), file_type
    )
    stored = None
    try:
        if not store.is_local():
            # A bucket put lasts as long as the transfer (minutes for a GB
            # recording): done before the session row is locked, so the
            # session's other uploads and its end do not wait on it, under a
            # key of its own that no other upload can take (the unique display
            # name is picked under the lock below; the key keeps it readable).
            stored = store_upload(
                f"{session_folder(session)}/{uuid4().hex}/{cleaned}",
                source_path, move=move, sha256=sha256,
            )  # fmt: skip
        with transaction.atomic():
            session = get_session(project, conf_num, lock=True)
            refuse_if_ended(session)
            try:
                admission.refuse_if_composite_full(session, file_type)
            except admission.Refused as exc:
                raise IngestError(exc.result, exc.message, exc.status) from None
            try:
                quotas.check_storage_quota(project, size)
            except quotas.QuotaExceeded as exc:
                raise IngestError(exc.result, exc.message, exc.status) from None
            name = unique_name(session, cleaned)
            if stored is None:  # a local store: a rename, instant
                stored = store_upload(
                    f"{session_folder(session)}/{name}", source_path, move=move, sha256=sha256
                )
            file = RecordingFile.objects.create(
                session=session,
                project=project,
                type=file_type,
                name=name,
                size=size,
                sha256=sha256,
                storage_path=stored,
                participant=participant[:200],
                content_type=admitted.content_type,
                duration_seconds=admitted.duration,
            )
            if file_type == RecordingFile.Type.LIVE:
                queue_session_event(
                    session, "live_recording", [file], dedupe_key=f"file:{file.pk}:live_recording"
                )
                transaction.on_commit(
                    lambda: lifecycle.files_ready(session.pk, lifecycle.Event.LIVE_UPLOADED)
                )
    except BaseException:
        if stored:
            store.delete(stored)
        raise
    log.info("stored %s (%d bytes) for session %s", stored, size, conf_num)
    return file


@transaction.atomic
def do_end_session(
    project: Project, conf_num: str, *, schedule_processing: bool = True, acting_user
) -> Session:
    """End the session: refuse further files, announce the individual recordings,
    hand chat/metadata to delivery and queue processing after commit."""
    recorders.lock_pool()  # before the session row, as every recorder action
    session = get_session(project, conf_num, lock=True)
    refuse_if_ended(session)
    session.ended_at = timezone.now()
    session.state = Session.State.PROCESSING
    session.recording = State.OFF
    session.save(update_fields=["ended_at", "state", "recording"])
    recorders.end_session(session)  # frees its recorder slots; what waited fails
    individual = list(session.files.filter(type=RecordingFile.Type.INDIVIDUAL))
    if individual:
        queue_session_event(
            session, "recording", individual, dedupe_key=f"session:{session.pk}:recording"
        )
    session_id = session.pk
    transaction.on_commit(
        lambda: lifecycle.files_ready(session_id, lifecycle.Event.SESSION_ENDED)
    )
    if schedule_processing and not individual:
        # Nothing to merge: the session is ready now instead of waiting behind
        # other sessions' transcodes on the processing cluster, so its
        # deliveries are complete (and announced) at once.
        from ..processing import finish_without_media

        return finish_without_media(session)
    if schedule_processing:
        from ..tasks import queue_processing

        queue_processing(session_id)
    return session
