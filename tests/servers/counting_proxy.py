"""A TCP proxy on loopback that counts the bytes it carries each way.

Put in front of a real server (moto's S3, pyftpdlib's control and data
ports, OpenSSH) it measures what a client really sent, whatever the client
believes: the reliability tests and bench/resume.py use it to show how many
bytes a killed worker's successor sent again.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType

BUFFER = 256 * 1024


class CountingProxy:
    """Forwards every connection to ``127.0.0.1:<target_port>``. ``upstream``
    counts client -> server bytes, ``downstream`` server -> client. ``host``
    may be another loopback address (127.0.0.2): then the proxy can take the
    very port numbers the server uses, as FTP's passive ports need."""

    def __init__(
        self, target_port: int, *, target_host: str = "127.0.0.1", host: str = "127.0.0.1",
        port: int = 0, rate: float = 0,
    ):  # fmt: skip
        self.target = (target_host, target_port)
        self.host = host
        # Bytes per second per connection (0: as fast as loopback), so that a
        # test can kill a client in the middle of a transfer, not after it.
        self.rate = rate
        self.listener = socket.create_server((host, port))
        self.port = self.listener.getsockname()[1]
        self.upstream = 0
        self.downstream = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept, name="counting-proxy", daemon=True)

    def start(self) -> CountingProxy:
        self._thread.start()
        return self

    def __enter__(self) -> CountingProxy:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def reset(self) -> None:
        with self._lock:
            self.upstream = self.downstream = 0

    def close(self) -> None:
        self._closing.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            sockets, self._sockets = set(self._sockets), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _addr = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self.connections += 1
                self._sockets.update((client, server))
            for source, sink, way in ((client, server, "upstream"), (server, client, "downstream")):
                threading.Thread(
                    target=self._pump, args=(source, sink, way), daemon=True, name=f"proxy-{way}"
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, way: str) -> None:
        try:
            while True:
                data = source.recv(BUFFER)
                if not data:
                    break
                # Counted once the server (or client) has taken it.
                sink.sendall(data)
                with self._lock:
                    setattr(self, way, getattr(self, way) + len(data))
                if self.rate:
                    time.sleep(len(data) / self.rate)
        except OSError:
            pass
        finally:
            # Half-close so the other side sees the end, then let the other pump finish.
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
            with contextlib.suppress(OSError):
                source.shutdown(socket.SHUT_RD)


class ProxiedFTP:
    """An FTP server seen through counting proxies on 127.0.0.2: one for the
    control port and one per passive port (the client opens data connections
    to the control connection's address and the PASV reply's port, so each
    proxy listens on the server's own port number)."""

    HOST = "127.0.0.2"

    def __init__(self, control_port: int, passive_ports: range, *, rate: float = 0):
        self.control = CountingProxy(control_port, host=self.HOST, port=control_port).start()
        self.data = [
            CountingProxy(p, host=self.HOST, port=p, rate=rate).start() for p in passive_ports
        ]

    @property
    def port(self) -> int:
        return self.control.port

    @property
    def upstream(self) -> int:
        return self.control.upstream + sum(p.upstream for p in self.data)

    def reset(self) -> None:
        for proxy in (self.control, *self.data):
            proxy.reset()

    def close(self) -> None:
        for proxy in (self.control, *self.data):
            proxy.close()
