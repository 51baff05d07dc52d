"""Recorder slots for live recording and streaming, shared by every project.

``LIVE_RECORDING_SLOTS`` recorders exist for the whole deployment. A start
takes a free one or waits in one first-come-first-served queue across all
projects; a stop or the end of the session frees the slot and the oldest
waiting request starts at once. A waiting request whose session ended, or
that waited longer than ``LIVE_RECORDING_MAX_WAIT_SECONDS``, fails.

Concurrency: every action here locks the RecorderPool row first and only then
session rows, in that order everywhere (``sessions.do_end_session`` and
``do_start_session`` too), so starts, stops and ends running in several web
processes see each other's slots and cannot deadlock. The slots in use are
the ACTIVE requests counted under that lock. On SQLite the IMMEDIATE
transactions (settings) serialise writers the same way.

Codes and messages are the reference's ("Live Recording Waiting Queue")."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from projects.models import Project

from ..events import queue_recording_state_event
from ..models import RecorderPool, RecorderRequest, Session
from ..recorder_config import (
    INVALID_CONFIG,
    ConfigError,
    clean_live_config,
    clean_streaming_config,
)
from . import sessions

log = logging.getLogger(__name__)

Kind = RecorderRequest.Kind
Request = RecorderRequest.State
State = Session.RecordingState
HOLDS_SLOT = (State.STARTING, State.ON, State.STOPPING)


@dataclass(frozen=True)
class Rules:
    """What differs between live recording and streaming: the session field
    that shows the state, the config, the words and the codes."""

    kind: str
    field: str
    noun: str
    clean_config: object  # (config, room) -> dict, raises ConfigError
    queued: tuple[int, str]
    repeated: tuple[int, str]
    removed: tuple[int, str]
    failed: tuple[int, str]
    config_field: str | None = None  # the session keeps the (non-secret) config too


RULES = {
    Kind.LIVE_RECORDING: Rules(
        Kind.LIVE_RECORDING, "live_recording", "live recording", clean_live_config,
        queued=(7207, "Live Recording request is in waiting, will be started soon"),
        repeated=(7208, "Last live Recording request is in waiting"),
        removed=(7039, "Live recording request was in waiting, successfully removed the "
                       "request from waiting"),
        failed=(7080, "Live recording request in waiting queue failed to start"),
        config_field="live_recording_config",
    ),
    Kind.STREAMING: Rules(
        Kind.STREAMING, "streaming", "streaming", clean_streaming_config,
        queued=(7104, "Streaming request is in waiting, will be started soon"),
        repeated=(7105, "Last streaming request is in waiting"),
        removed=(7046, "Streaming request was in waiting, successfully removed the request "
                       "from waiting"),
        failed=(7081, "Streaming request in waiting queue failed to start"),
    ),
}  # fmt: skip


@dataclass
class StillWaiting(Exception):
    """A repeated start while the first one waits (7208 / 7105)."""

    result: int
    message: str
    position: int


@dataclass
class Outcome:
    """A start or stop that was accepted: ``result`` 0 (done), the queued
    code with the ``position`` (waiting) or the removed-from-waiting code."""

    session: Session
    result: int = 0
    message: str = ""
    position: int | None = None


def lock_pool() -> None:
    """Take the pool's row lock for the rest of the transaction."""
    if not RecorderPool.objects.select_for_update().filter(pk=1).exists():
        RecorderPool.objects.get_or_create(pk=1)  # a flushed database; races end in one row
        RecorderPool.objects.select_for_update().filter(pk=1).exists()


def slots_in_use() -> int:
    return RecorderRequest.objects.filter(state=Request.ACTIVE).count()


def position_of(request: RecorderRequest) -> int:
    """1 for the next request to start; requests are created under the pool
    lock, so ids are in the order of arrival."""
    return RecorderRequest.objects.filter(state=Request.WAITING, id__lt=request.id).count() + 1


def _deadline(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.LIVE_RECORDING_MAX_WAIT_SECONDS)


def _announce(
    session: Session,
    rules: Rules,
    request: RecorderRequest | None,
    state: str,
    *,
    position: int | None = None,
    code: int | None = None,
    reason: str = "",
) -> None:
    queue_recording_state_event(
        session, kind=rules.kind, state=state, position=position, code=code, reason=reason,
        dedupe_key=f"recorder:{request.pk}:{state}" if request is not None else None,
    )  # fmt: skip


def _set_state(session: Session, rules: Rules, state: str) -> None:
    setattr(session, rules.field, state)
    session.save(update_fields=[rules.field])


def _activate(request: RecorderRequest, session: Session) -> None:
    rules = RULES[Kind(request.kind)]
    request.state, request.started_at = Request.ACTIVE, timezone.now()
    request.save(update_fields=["state", "started_at"])
    _set_state(session, rules, State.ON)
    _announce(session, rules, request, State.ON)


def _fail(request: RecorderRequest, session: Session, reason: str) -> None:
    rules = RULES[Kind(request.kind)]
    code = rules.failed[0]
    request.state, request.code, request.finished_at = Request.FAILED, code, timezone.now()
    request.save(update_fields=["state", "code", "finished_at"])
    _set_state(session, rules, State.FAILED)
    _announce(session, rules, request, State.FAILED, code=code, reason=reason)
    log.info("%s of session %s could not start: %s", rules.noun, session.conf_num, reason)


def _locked_session(request: RecorderRequest) -> Session:
    # of=self: the session row only, not its project's and room's rows, which
    # another project's work may hold while the whole pool waits.
    return (
        Session.objects.select_for_update(of=("self",)).select_related("room", "project")
        .get(pk=request.session_id)
    )  # fmt: skip


def _fill_free_slots() -> None:
    """With the pool locked: fail waiting requests that can no longer start,
    then start the oldest ones while slots are free."""
    waiting = RecorderRequest.objects.filter(state=Request.WAITING).order_by("id")
    limit = settings.LIVE_RECORDING_MAX_WAIT_SECONDS
    for request in list(waiting.filter(requested_at__lt=_deadline(timezone.now()))):
        _fail(request, _locked_session(request), f"no recorder was free within {limit} seconds")
    free = settings.LIVE_RECORDING_SLOTS - slots_in_use()
    while free > 0:
        batch = list(waiting[:free])
        if not batch:
            return
        for request in batch:
            session = _locked_session(request)
            if session.is_ended:
                _fail(request, session, "the session ended while it waited")
            else:
                _activate(request, session)
                free -= 1


def _open_request(session: Session, kind: str) -> RecorderRequest | None:
    return RecorderRequest.objects.filter(
        session=session, kind=kind, state__in=RecorderRequest.OPEN_STATES
    ).first()


def _request(session: Session, rules: Rules, config: dict) -> Outcome:
    """Start now if a slot is free, else wait. Pool and session are locked."""
    request = RecorderRequest.objects.create(
        session=session, project=session.project, kind=rules.kind, config=config
    )
    if rules.config_field:
        setattr(session, rules.config_field, config)
        session.save(update_fields=[rules.config_field])
    # _fill_free_slots ran first, so nobody waits while a slot is free.
    if slots_in_use() < settings.LIVE_RECORDING_SLOTS:
        _activate(request, session)
        return Outcome(session)
    _set_state(session, rules, State.WAITING)
    position = position_of(request)
    code, message = rules.queued
    _announce(session, rules, request, State.WAITING, position=position, code=code)
    return Outcome(session, code, message, position)


@transaction.atomic
def do_start_recorder(
    project: Project, conf_num: str, kind: str, *, role=None, config=None, acting_user
) -> Outcome:
    """Live recording or streaming for a session: a free slot, or a place in
    the queue. ``acting_user`` is None: the media server asks, not a person."""
    rules = RULES[Kind(kind)]
    lock_pool()
    _fill_free_slots()
    session = sessions.get_session(project, conf_num, lock=True)
    sessions.check_role(role, 5007, f"start {rules.noun}")
    sessions.refuse_if_ended(session)
    if session.room.chat_only:
        raise sessions.IngestError(5097, f"{rules.noun.capitalize()} is not available in a "
                                       "chat-only room.")  # fmt: skip
    try:
        clean = rules.clean_config(config, session.room)  # type: ignore[operator]
    except ConfigError as exc:
        raise sessions.IngestError(INVALID_CONFIG, str(exc), 400) from None
    current = getattr(session, rules.field)
    if current == State.WAITING:
        request = _open_request(session, rules.kind)
        code, message = rules.repeated
        raise StillWaiting(code, message, position=position_of(request) if request else 0)
    if current == State.STARTING:
        raise sessions.IngestError(5122, f"{rules.noun.capitalize()} is starting already; "
                                       "wait for it.")  # fmt: skip
    if current in (State.ON, State.STOPPING):
        raise sessions.IngestError(5139, f"{rules.noun.capitalize()} is already running.")
    return _request(session, rules, clean)


@transaction.atomic
def do_stop_recorder(
    project: Project, conf_num: str, kind: str, *, role=None, acting_user
) -> Outcome:
    rules = RULES[Kind(kind)]
    lock_pool()
    session = sessions.get_session(project, conf_num, lock=True)
    sessions.check_role(role, 5008, f"stop {rules.noun}")
    sessions.refuse_if_ended(session)
    noun = rules.noun.capitalize()
    if session.room.chat_only:
        raise sessions.IngestError(5097, f"{noun} is not available in a chat-only room.")
    current = getattr(session, rules.field)
    request = _open_request(session, rules.kind)
    if current == State.WAITING and request is not None and request.state == Request.WAITING:
        request.state, request.finished_at = Request.CANCELLED, timezone.now()
        request.save(update_fields=["state", "finished_at"])
        _set_state(session, rules, State.OFF)
        _announce(session, rules, request, State.OFF)
        code, message = rules.removed
        return Outcome(session, code, message)
    if current == State.STOPPING:
        raise sessions.IngestError(5141, f"{noun} is stopping already; wait for it.")
    if current == State.STARTING:
        raise sessions.IngestError(5122, f"{noun} is still starting; stop it once it runs.")
    if current not in HOLDS_SLOT:
        raise sessions.IngestError(5140, f"{noun} is not running in this session.")
    if request is not None:
        request.state, request.finished_at = Request.STOPPED, timezone.now()
        request.save(update_fields=["state", "finished_at"])
    _set_state(session, rules, State.OFF)
    _announce(session, rules, request, State.OFF)
    _fill_free_slots()
    # The freed slot may have gone to this session's other kind.
    session.refresh_from_db(fields=[r.field for r in RULES.values()])
    return Outcome(session)


def start_with_session(session: Session, kind: str, config: dict) -> Outcome:
    """Automatic live recording of a session being created (pool locked)."""
    return _request(session, RULES[Kind(kind)], config)


def end_session(session: Session) -> None:
    """With pool and session locked and the session marked ended: free its
    slots, fail what still waits, and let the queue move on."""
    for request in RecorderRequest.objects.filter(
        session=session, state__in=RecorderRequest.OPEN_STATES
    ):
        if request.state == Request.WAITING:
            _fail(request, session, "the session ended while it waited")
        else:
            request.state, request.finished_at = Request.STOPPED, timezone.now()
            request.save(update_fields=["state", "finished_at"])
            rules = RULES[Kind(request.kind)]
            _set_state(session, rules, State.OFF)
            _announce(session, rules, request, State.OFF)
    for rules in RULES.values():
        if getattr(session, rules.field) in HOLDS_SLOT:
            _set_state(session, rules, State.OFF)
    _fill_free_slots()


def do_expire_waiting_recorders(*, acting_user) -> int:
    """Fail waiting requests past the longest wait, and start waiting ones
    when slots are free without a stop having said so (a deleted project's
    sessions, more LIVE_RECORDING_SLOTS after a restart). Takes the pool lock
    only when there is something to do; returns how many were overdue."""
    waiting = RecorderRequest.objects.filter(state=Request.WAITING)
    overdue = waiting.filter(requested_at__lt=_deadline(timezone.now()))
    if not overdue.exists() and not (
        waiting.exists() and slots_in_use() < settings.LIVE_RECORDING_SLOTS
    ):
        return 0
    with transaction.atomic():
        lock_pool()
        count = overdue.count()
        _fill_free_slots()
    return count


def session_states(session: Session) -> dict[str, dict]:
    """``{"live_recording": {state, position, code}, "streaming": {...}}``."""
    waiting = {}
    if any(getattr(session, r.field) == State.WAITING for r in RULES.values()):
        waiting = {
            r.kind: r
            for r in RecorderRequest.objects.filter(session=session, state=Request.WAITING)
        }
        if any(r.requested_at < _deadline(timezone.now()) for r in waiting.values()):
            do_expire_waiting_recorders(
                acting_user=None
            )  # checked on access as well as by the schedule
            session.refresh_from_db(fields=[r.field for r in RULES.values()])
            return session_states(session)
    states = {}
    for rules in RULES.values():
        state = getattr(session, rules.field)
        request = waiting.get(rules.kind)
        code = (
            rules.queued[0] if state == State.WAITING
            else rules.failed[0] if state == State.FAILED
            else None
        )  # fmt: skip
        states[rules.field] = {
            "state": state,
            "position": position_of(request) if request is not None else None,
            "code": code,
        }
    return states
