"""Logs without the secrets in signed download links.

A ``/dl/<token>`` link needs no login for 72 hours: whoever reads it in a log
can download the recording. gunicorn logs the request line, path, referer and
raw URI; ``RedactingLogger`` replaces the token in every one of them before
the line is formatted (``logger_class`` in ``deploy/gunicorn.conf.py``; nginx's
``log_format`` in ``deploy/nginx.conf.template`` does the same). Django's own
``django.request`` warnings ("Gone: /dl/...") go through
``RedactDownloadTokens`` (``LOGGING`` in settings).
"""

from __future__ import annotations

import logging
import re

from gunicorn.glogging import Logger

DOWNLOAD_TOKEN = re.compile(r"/dl/[^\s?#\"]+")
REDACTED = "/dl/[redacted]"


def redact_download_tokens(text: str) -> str:
    return DOWNLOAD_TOKEN.sub(REDACTED, text)


class RedactingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {
            key: redact_download_tokens(value) if isinstance(value, str) else value
            for key, value in atoms.items()
        }


class RedactDownloadTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/dl/" in message:
            record.msg, record.args = redact_download_tokens(message), None
        return True
