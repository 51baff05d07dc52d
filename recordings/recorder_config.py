"""What a live recording or a stream may be asked to use.

A live recording opens a viewer page (``config.url``, http or https). A stream
pushes the session to ``config.rtmp_url`` — an ``rtmp://`` or ``rtmps://``
URL whose path carries the tenant's stream key, so it is a secret: refusals
name what is wrong with it but never repeat it.

The media server, not the portal, connects to these addresses, so a tenant
could aim it at the media server's own network. The host must therefore be
a public DNS name or a global IP address, checked without resolving it (a
name's address can change after the check anyway; the media server's own
egress rules are the last line)."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from projects.models import Room

INVALID_CONFIG = 5138
RTMP_SCHEMES = ("rtmp", "rtmps")
RTMP_URL_MAX = 2048
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa", ".lan")
_viewer_url = URLValidator(schemes=["http", "https"])


class ConfigError(ValueError):
    """A configuration the portal refuses; the message says what to fix."""


def clean_live_config(config, room: Room) -> dict:
    """The viewer page of a live recording; the room's page when not given."""
    if config is None:
        url = room.settings.get("live_recording", {}).get("url", "")
        return {"url": url} if url else {}
    if not isinstance(config, dict):
        raise ConfigError("Invalid live recording configuration: must be an object.")
    if "url" in config:
        try:
            if not isinstance(config["url"], str):
                raise ValidationError("not a string")
            _viewer_url(config["url"])
        except ValidationError:
            raise ConfigError(
                "Invalid live recording configuration: config.url must be an http(s) URL."
            ) from None
    return config


def clean_streaming_config(config, room: Room) -> dict:
    """``{"rtmp_url": ...}`` once its scheme and host are acceptable."""
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ConfigError(
            "Invalid streaming configuration: send config as an object with rtmp_url "
            "(rtmp://host/app/stream-key or rtmps://...)."
        )
    unknown = sorted(str(key)[:40] for key in config if key != "rtmp_url")
    if unknown:
        raise ConfigError(
            f"Invalid streaming configuration: unknown key {unknown[0]!r}; only rtmp_url is read."
        )
    url = config.get("rtmp_url")
    if not isinstance(url, str) or not url:
        raise ConfigError(
            "Invalid streaming configuration: config.rtmp_url is required "
            "(rtmp://host/app/stream-key or rtmps://...)."
        )
    problem = rtmp_url_problem(url)
    if problem:
        raise ConfigError(f"Invalid streaming configuration: config.rtmp_url {problem}.")
    return {"rtmp_url": url}


def rtmp_url_problem(url: str) -> str:
    """What is wrong with ``url`` as a streaming target, or "" if nothing.
    Never quotes the URL (its path holds the stream key)."""
    if len(url) > RTMP_URL_MAX:
        return f"is longer than {RTMP_URL_MAX} characters"
    if any(not ch.isprintable() or ch.isspace() for ch in url):
        return "contains spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a valid URL (check the host and port)"
    if parts.scheme.lower() not in RTMP_SCHEMES:
        return "must start with rtmp:// or rtmps://"
    if port == 0:
        return "has port 0"
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return "has no host"
    if parts.path.strip("/") == "":
        return "has no application and stream key in its path (rtmp://host/app/stream-key)"
    return host_problem(host)


def host_problem(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        if not address.is_global:
            return "must not point at a private, loopback, link-local or reserved address"
        return ""
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return "has a host name that is not a valid DNS name"
    labels = ascii_host.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return "must name a public host (a DNS name such as live.example.com, or a public IP)"
    if labels[-1].isdigit():
        # "127.1" or "0x7f.1" are addresses to some resolvers, not names.
        return "must not point at a private, loopback, link-local or reserved address"
    if ascii_host == "localhost" or ascii_host.endswith(_LOCAL_SUFFIXES):
        return "must name a public host, not a local one"
    return ""
