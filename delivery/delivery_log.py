"""The delivery log (a capped list of events on the Delivery row) and the
words shown for errors: what people read is built from the portal's own
words, never from an exception's text."""

from __future__ import annotations

from collections.abc import Iterable

from django.utils import timezone

LOG_CAP = 200


def log_entry(event: str, message: str) -> dict:
    return {"at": timezone.now().isoformat(timespec="seconds"), "event": event, "message": message}


def capped_log(entries: Iterable[dict]) -> list[dict]:
    return list(entries)[-LOG_CAP:]


class Scrubber:
    """Masks secret values in tracebacks before they reach the operator's log.

    Only for the log: masking substrings garbles a message whenever a secret
    happens to be an ordinary word ("Login", "incorrect", a user name), so
    what people read (attempt logs, delivery errors, test results) is built
    from the portal's own words instead (``TransferError.message``, and
    ``unexpected_error`` below, which never quotes the exception's text)."""

    def __init__(self, secrets: dict):
        self.values = sorted(
            (str(v) for v in (secrets or {}).values() if v and len(str(v)) >= 4),
            key=len,
            reverse=True,
        )

    def __call__(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, "********")
        return text


def unexpected_error(exc: BaseException, doing: str) -> str:
    """The words shown for an exception the destination did not translate:
    its type only, since its text may quote a remote reply or a secret."""
    return f"Unexpected error ({type(exc).__name__}) while {doing}; the portal's log has the details."
