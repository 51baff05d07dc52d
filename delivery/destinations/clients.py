"""Service clients reused across deliveries in one worker process.

Creating a boto3 client was about half of a small S3 delivery (0.36 of 0.71 s,
bench/README.md, "Latency and load"): a new ``boto3.session.Session()`` loads
and parses the S3 service model every time. Here a client is made once per
(endpoint, credentials, region, options) and handed to every delivery that
asks with the same values; boto3 clients are thread-safe, sessions are not, so
the one shared session is only used under a lock. A changed secret or
endpoint is a different key, hence a new client: nothing to invalidate.

Keys are an HMAC of the values with a random per-process salt, so no secret
(not even its plain hash) is kept as a key or can reach a log. The cache is
bounded; an evicted client is not closed (a delivery may still hold it), the
garbage collector closes its connections once nobody does.

Azure's clients are not cached: building one costs about 1 ms (measured with
the portal's options), against ~60 ms for a boto3 client from a new session.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

MAX_CLIENTS = 32  # distinct S3 destinations a worker serves at once, with room

_SALT = secrets.token_bytes(32)
_lock = threading.Lock()
_clients: OrderedDict[str, Any] = OrderedDict()
_boto_session: Any = None


def client_key(kind: str, **values: Any) -> str:
    """A key for ``values`` (secrets included) that reveals none of them."""
    text = json.dumps(values, sort_keys=True, default=repr)
    return f"{kind}:{hmac.new(_SALT, text.encode(), hashlib.sha256).hexdigest()}"


def shared_client(key: str, make: Callable[[], Any]) -> Any:
    """The client cached under ``key``, made (under the lock) if missing."""
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = make()
            while len(_clients) > MAX_CLIENTS:
                _clients.popitem(last=False)
        else:
            _clients.move_to_end(key)
        return client


def boto3_client(service: str, **kwargs: Any) -> Any:
    """A new boto3 client from the process's one session (call under
    ``shared_client``'s lock, i.e. from its ``make``): the session's loader
    keeps the parsed service models, so the second client costs ~7 ms."""
    global _boto_session
    import boto3

    if _boto_session is None:
        _boto_session = boto3.session.Session()
    return _boto_session.client(service, **kwargs)

