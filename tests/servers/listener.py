"""A TCP listener that records every connection it accepts: proof that the
egress guard never connected, and a stand-in for an internal service that
greets with a banner (``+OK internal-cache v7.2.4 role=master``) or trickles
its answer one byte a second."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class RecordingListener:
    host: str = "127.0.0.1"
    port: int = 0
    greeting: bytes = b""
    # Sent after the client's first bytes, ``trickle_delay`` seconds apart per byte.
    answer: bytes = b""
    trickle_delay: float = 0.0
    # Close each connection right after accepting it (and greeting, if set).
    hang_up: bool = False
    accepted: list[tuple[str, int]] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.host, self.port))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(peer[:2])
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(5)
                if self.greeting:
                    conn.sendall(self.greeting)
                if self.hang_up:
                    return
                data = conn.recv(65536)
                self.received.append(data)
                for i in range(len(self.answer)):
                    if self._stop.is_set():
                        return
                    conn.sendall(self.answer[i : i + 1])
                    time.sleep(self.trickle_delay)
                while conn.recv(65536):
                    pass
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(timeout=2)

    def __enter__(self) -> RecordingListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def listeners_on_one_port(*hosts: str, **options) -> list[RecordingListener]:
    """One listener per loopback address, all on the same port (a URL names
    one port, whichever address its name resolves to)."""
    for _ in range(20):
        first = RecordingListener(hosts[0], **options)
        try:
            return [first] + [RecordingListener(h, port=first.port, **options) for h in hosts[1:]]
        except OSError:
            first.close()
    raise RuntimeError("no port free on every address")
