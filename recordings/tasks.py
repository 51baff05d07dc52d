"""django-q2 tasks of the recordings app; they take ids and call services."""

from __future__ import annotations

from .processing import process_session


def process_session_task(session_id: int) -> str:
    return process_session(session_id).state
