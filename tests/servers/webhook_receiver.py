"""A real HTTP webhook receiver on a free loopback port.

    from tests.servers.webhook_receiver import webhook_receiver  # noqa: F401

    def test_x(webhook_receiver):
        ...point the project's webhook at webhook_receiver.url...
        [request] = webhook_receiver.wait_for(1)
        payload = webhook_receiver.verify(secret, request)

``fail_next(n, status=500)`` answers the next n requests with that status;
``fail_next(n, delay=s)`` holds them s seconds first (to make the sender time
out); ``require_basic(user, password)`` answers 401 without those
credentials. Use ``WebhookReceiver()`` as a context manager for other scopes.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    answered: int = 0

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        value = self.headers.get("authorization", "")
        if not value.lower().startswith("basic "):
            return None
        user, _, password = base64.b64decode(value[6:]).decode().partition(":")
        return user, password


@dataclass
class _Failure:
    status: int
    delay: float


@dataclass
class WebhookReceiver:
    requests: list[ReceivedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        self._failures: list[_Failure] = []
        self._basic: tuple[str, str] | None = None
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hooks"

    # -- behaviour ----------------------------------------------------------------

    def fail_next(self, n: int, status: int = 500, *, delay: float = 0.0) -> None:
        with self._lock:
            self._failures.extend(_Failure(status, delay) for _ in range(n))

    def require_basic(self, username: str | None, password: str = "") -> None:
        """Answer 401 unless these Basic credentials come along (None: stop requiring)."""
        self._basic = None if username is None else (username, password)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._failures.clear()
            self._basic = None

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Block until ``count`` requests arrived; return the first ``count``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"webhook receiver got {len(self.requests)} requests, expected {count}"
                    )
                self._lock.wait(left)
            return list(self.requests[:count])

    @staticmethod
    def verify(secret: str, request: ReceivedRequest) -> Any:
        """The parsed body if the Standard Webhooks signature matches ``secret``;
        raises standardwebhooks.WebhookVerificationError otherwise."""
        return Webhook(secret).verify(request.body, request.headers)

    # -- server side --------------------------------------------------------------

    def _answer(self, request: ReceivedRequest) -> tuple[int, float]:
        with self._lock:
            self.requests.append(request)
            self._lock.notify_all()
            if self._basic is not None and request.basic_auth != self._basic:
                return 401, 0.0
            if self._failures:
                failure = self._failures.pop(0)
                return failure.status, failure.delay
        return 204, 0.0

    def _handler_class(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                request = ReceivedRequest(
                    method="POST",
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length),
                )
                status, delay = receiver._answer(request)
                request.answered = status
                if delay and receiver._closing.wait(delay):
                    return
                body = b"" if status == 204 else f"answer {status}".encode()
                try:
                    self.send_response(status)
                    if status == 401:
                        self.send_header("WWW-Authenticate", 'Basic realm="hooks"')
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the sender gave up (timeout) before the answer

            do_PUT = do_POST  # noqa: N815

            def log_message(self, *args) -> None:
                pass

        return Handler


@pytest.fixture
def webhook_receiver():
    with WebhookReceiver() as receiver:
        yield receiver
