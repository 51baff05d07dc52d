"""Authenticated SSH connections kept for the next delivery in the same worker.

A small SFTP delivery was mostly its connection: TCP connect, key exchange,
host-key check, login, shell probe (bench/README.md, "Small deliveries over
SSH"). When a delivery closes its destination cleanly, the connection is put
here instead of being closed; the next delivery to the same server, as the
same user, with the same credentials and pinned host key, takes it back (its
shell probe answer with it) and checks it with one round trip before use.

- Keys are ``clients.client_key`` HMACs (no secret, not even its plain hash, is
  kept as a key); a changed password, key or pin is a different key, so it
  never rides a connection that logged in with other values. The egress rule
  in force is part of the key: a connection vetted under one rule is not
  handed out under another.
- A connection is held by one destination at a time; idle ones are closed
  after ``IDLE_SECONDS`` (by one sweeper thread, alive while anything is
  kept) and at most ``MAX_IDLE`` are kept per process.
- A connection is closed, not kept, when the ``with`` block using it raised.
- A forked child starts with an empty pool (the parent's sockets are not its
  to use).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from portal import egress

from ..clients import client_key

if TYPE_CHECKING:
    import paramiko

    from .lanes import Lanes

IDLE_SECONDS = 30.0
MAX_IDLE = 8
LOGIN_FIELDS = ("host", "port", "username", "password", "private_key", "passphrase", "pinned_fingerprint")


@dataclass
class Idle:
    key: str
    transport: paramiko.Transport
    shell: bool | None
    since: float
    lanes: Lanes | None = None  # OpenSSH lanes logged in beside it (``lanes``)


_lock = threading.Lock()
_idle: list[Idle] = []
_sweeper: threading.Thread | None = None
_wake = threading.Event()  # close_all() wakes the sweeper, which then ends


def pool_key(config: dict[str, Any]) -> str:
    values = {name: config.get(name) for name in LOGIN_FIELDS}
    values["port"] = int(values["port"] or 22)
    values["egress"] = [str(network) for network in egress.allowed_networks()]
    return client_key("ssh", **values)


def take(key: str) -> Idle | None:
    """The most recently returned live connection for ``key``, if any."""
    with _lock:
        _expire(time.monotonic())  # also drops those the server has closed
        for index in range(len(_idle) - 1, -1, -1):
            if _idle[index].key == key:
                return _idle.pop(index)
    return None


def give_back(key: str, transport: paramiko.Transport, shell: bool | None, lanes: Lanes | None = None) -> None:
    """Keep ``transport`` (and the lanes logged in beside it) for the next
    ``take(key)``; one no longer active is closed."""
    if lanes is not None and not lanes.reusable:
        lanes.close()
        lanes = None
    entry = Idle(key, transport, shell, time.monotonic(), lanes)
    if not transport.is_active():
        _close(entry)
        return
    global _sweeper
    with _lock:
        _idle.append(entry)
        while len(_idle) > MAX_IDLE:
            _close(_idle.pop(0))
        if _sweeper is None:
            _sweeper = threading.Thread(target=_sweep, name="ssh-pool-sweeper", daemon=True)
            _sweeper.start()


def _sweep() -> None:
    """One thread per process while anything is kept: closes the connections
    idle for longer than ``IDLE_SECONDS`` and ends when none is left."""
    global _sweeper
    while True:
        _wake.wait(max(0.05, min(IDLE_SECONDS / 4, 5.0)))
        _wake.clear()
        with _lock:
            _expire(time.monotonic())
            if not _idle:
                _sweeper = None
                return


def close_all() -> None:
    with _lock:
        while _idle:
            _close(_idle.pop())
    _wake.set()


def idle_count() -> int:
    with _lock:
        return len(_idle)


def _expire(now: float) -> None:
    for entry in [e for e in _idle if now - e.since > IDLE_SECONDS or not e.transport.is_active()]:
        _idle.remove(entry)
        _close(entry)


def _close(entry: Idle) -> None:
    if entry.lanes is not None:
        entry.lanes.close()
    try:
        entry.transport.close()
    except Exception:  # noqa: BLE001 - closing must not raise
        pass


def _forget_in_child() -> None:
    global _lock, _sweeper, _wake
    _lock, _sweeper, _wake = threading.Lock(), None, threading.Event()
    _idle.clear()  # the parent's connections: not closed here, the parent still owns them


os.register_at_fork(after_in_child=_forget_in_child)
