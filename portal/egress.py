"""The egress guard: every outbound connection the portal makes to an address
a tenant chose (webhooks, every delivery destination, Google's URLs when an
operator overrides them) is opened by ``connect()`` here.

``connect()`` resolves the name once, drops every answer that is not a
globally routable address (loopback, private, link-local, CGNAT, multicast,
reserved, unspecified, IPv4-mapped, NAT64, 6to4/Teredo wrapping an internal
address, ...), refuses the name if none is left, and then connects to exactly
the addresses it vetted, so a DNS
answer that changes between the check and the connect (rebinding) cannot
swap in an internal address. Numeric spellings such as ``2130706433``,
``0177.0.0.1`` or ``0x7f.1`` are what the resolver makes of them (127.0.0.1),
so they meet the same rule.

``OUTBOUND_ALLOWED_NETWORKS`` (comma-separated CIDRs, empty by default) lists
networks exempt from the rule, e.g. ``127.0.0.0/8`` for the test suite's
loopback servers or an operator's own storage network.

HTTP clients reach ``connect()`` through ``portal/egress_http.py``; FTP and SSH
call it directly. Forms and commands call ``validate_public_host`` /
``validate_public_url`` when a host or URL is saved.
"""

from __future__ import annotations

import contextvars
import ipaddress
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# inet_aton() accepts these spellings of an IPv4 address (decimal, octal, hex
# parts, fewer than four parts); anything else is a name.
_NUMERIC_HOST = re.compile(r"^[0-9a-fA-FxX.]+$")
RULE = (
    "the portal only connects to public internet addresses "
    "(the server's operator can allow a network with OUTBOUND_ALLOWED_NETWORKS)"
)


NAME_REFUSED = "does not resolve to a public internet address"


class OutboundRefused(Exception):
    """A connection to a non-public address was refused. The message names
    the rule and never an address the tenant did not type themselves."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def allowed_networks() -> tuple[IPNetwork, ...]:
    value = getattr(settings, "OUTBOUND_ALLOWED_NETWORKS", ())
    items = value.split(",") if isinstance(value, str) else list(value)
    networks = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"OUTBOUND_ALLOWED_NETWORKS: {item!r} is not a network such as 127.0.0.0/8"
            ) from None
    return tuple(networks)


def refusal_reason(ip: IPAddress) -> str | None:
    """What kind of address ``ip`` is, if the guard refuses it; None if the
    portal may connect to it."""
    if any(ip.version == net.version and ip in net for net in allowed_networks()):
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address"
        if any(ip in net for net in NAT64):
            return "a NAT64 address"
        if ip.sixtofour is not None and refusal_reason(ip.sixtofour):
            return "a 6to4 address wrapping an internal IPv4 address"
        if ip.teredo is not None:
            return "a Teredo tunnel address"
        if ip in IPV4_COMPATIBLE and int(ip) > 1:
            return "an IPv4-compatible IPv6 address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata services live there)"
    if ip.is_multicast:
        return "a multicast address"
    if ip.version == 4 and ip in CGNAT:
        return "a carrier-grade NAT address (100.64.0.0/10)"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private-network address"
    if not ip.is_global:
        return "not a globally routable address"
    return None


def literal_address(host: str) -> IPAddress | None:
    """The IP address ``host`` spells, in any notation the resolver accepts
    (``[::1]``, ``2130706433``, ``0x7f.1``), or None for a name."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    with suppress(ValueError):
        return ipaddress.ip_address(host.split("%", 1)[0])
    if _NUMERIC_HOST.match(host) and not host.endswith("."):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _refuse(host: str, ip: IPAddress, reason: str) -> OutboundRefused:
    shown = host.strip().strip("[]")
    if literal_address(host) is not None:
        spelled = shown if shown == str(ip) else f"{shown} (that is {ip})"
        return OutboundRefused(f"{spelled} is {reason}: {RULE}.")
    # A name: neither which internal address nor what kind of address (a tenant
    # would learn what the portal's network calls its loopback, private and
    # metadata hosts); the operator's log and DNS tell the operator.
    return OutboundRefused(f"{shown} {NAME_REFUSED}: {RULE}.")


def resolve(host: str, port: int) -> list[tuple[Any, ...]]:
    """The ``getaddrinfo`` answers for (host, port) the guard accepts; refused
    answers are dropped (``localhost`` may name ::1 besides an allowed
    127.0.0.1). Raises OutboundRefused if none is left, socket.gaierror if
    the name does not resolve."""
    if not host:
        raise OutboundRefused("No host name given.")
    answers = socket.getaddrinfo(host.strip("[]"), port, 0, socket.SOCK_STREAM)
    vetted, refused = [], None
    for answer in answers:
        ip = ipaddress.ip_address(str(answer[4][0]).split("%", 1)[0])
        reason = refusal_reason(ip)
        if reason is None:
            vetted.append(answer)
        elif refused is None:
            refused = _refuse(host, ip, reason)
    if not vetted and refused is not None:
        raise refused
    return vetted


def connect(
    host: str,
    port: int,
    timeout: Any = None,
    *,
    source_address: tuple[str, int] | None = None,
    socket_options: Sequence[tuple[int, int, Any]] | None = None,
) -> socket.socket:
    """Open a TCP connection to (host, port) through the guard: resolve once,
    vet every answer, connect only to a vetted address. ``timeout`` is in
    seconds (None: blocking; anything else, such as urllib3's "default"
    sentinel, leaves the socket's default)."""
    deadline = _DEADLINE.get()
    wanted = (
        timeout
        if timeout is None or isinstance(timeout, int | float)
        else socket.getdefaulttimeout()
    )
    error: OSError | None = None
    for family, socktype, proto, _name, sockaddr in resolve(host, port):
        sock = socket.socket(family, socktype, proto)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            sock.settimeout(deadline.clip(wanted) if deadline is not None else wanted)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            sock.settimeout(wanted)
            if deadline is not None:
                deadline.watch(sock)
            return sock
        except OSError as exc:
            error = exc
            sock.close()
    raise error or OSError(f"Cannot connect to {host}:{port}")


# -- an overall deadline for everything connected inside a block ------------------------------


class Deadline:
    """Shuts down every socket ``connect()`` opened inside ``deadline()`` once
    the time is up, so a peer that trickles one byte a second cannot hold a
    connection past it (per-read timeouts never fire against a trickle)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.ends_at = time.monotonic() + seconds
        self.expired = False
        self._watched: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def clip(self, seconds: float | None) -> float:
        left = max(self.ends_at - time.monotonic(), 0.001)
        return left if seconds is None else min(seconds, left)

    def watch(self, sock: socket.socket) -> None:
        # A duplicate descriptor: TLS wrapping detaches the original socket
        # object, and shutdown() acts on the connection, not the descriptor.
        copy = sock.dup()
        with self._lock:
            self._watched.append(copy)
            expired = self.expired
        if expired:
            self._expire()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            watched = list(self._watched)
        for sock in watched:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            watched, self._watched = self._watched, []
        for sock in watched:
            sock.close()


_DEADLINE: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "egress_deadline", default=None
)


@contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """Connections opened by ``connect()`` in this block (in this thread) are
    cut ``seconds`` after it starts; ``.expired`` tells whether that happened."""
    watch = Deadline(seconds)
    token = _DEADLINE.set(watch)
    watch._timer.start()
    try:
        yield watch
    finally:
        _DEADLINE.reset(token)
        watch.close()


# -- checks when a host or URL is saved -------------------------------------------------------


def check_host(host: str) -> None:
    """Raise OutboundRefused if ``host`` is, or resolves to, a refused address.
    A name that does not resolve now passes: it is checked again at every
    connection, and a destination may be saved before its DNS exists."""
    host = (host or "").strip()
    if not host:
        return
    ip = literal_address(host)
    if ip is not None:
        reason = refusal_reason(ip)
        if reason:
            raise _refuse(host, ip, reason)
        return
    with suppress(OSError, UnicodeError):
        resolve(host, 0)


def validate_public_host(value: str) -> None:
    """Django validator: a host name or address the guard would connect to."""
    try:
        check_host(value)
    except OutboundRefused as exc:
        raise ValidationError(exc.message, code="egress") from None


def validate_public_url(value: str) -> None:
    """Django validator: a URL whose host the guard would connect to."""
    try:
        host = urlsplit((value or "").strip()).hostname or ""
    except ValueError:
        return  # malformed: the URL field's own validator says so
    validate_public_host(host)


def refused_in(exc: BaseException | None) -> OutboundRefused | None:
    """The OutboundRefused behind ``exc`` (libraries wrap what a connection
    raised), or None."""
    seen = 0
    while exc is not None and seen < 12:
        if isinstance(exc, OutboundRefused):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None
