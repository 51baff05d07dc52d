"""``manage.py check`` messages for operator settings that would otherwise
surface as a 500 or a misleading error at the first request that needs them.

Registered from ``projects.apps`` (the ``portal`` package is not an app).
The same rules are used where the setting is needed (e.g. the Google connect
page shows ``google_url_problems`` as its error), so a page never crashes on
them either.
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

GOOGLE_URL_SETTINGS = (
    "GOOGLE_OAUTH_AUTH_URI",
    "GOOGLE_OAUTH_TOKEN_URI",
    "GOOGLE_OAUTH_REVOKE_URI",
    "GOOGLE_DRIVE_API_BASE",
)
QUOTA_SETTINGS = ("PROJECT_MAX_ROOMS", "PROJECT_MAX_STORAGE_BYTES", "PROJECT_MAX_LIVE_SESSIONS")
REDIS_SCHEMES = ("redis", "rediss", "unix")


def google_url_problems() -> list[str]:
    """Google's OAuth and Drive URLs carry the client secret and tokens: they
    must be https. Plain http is accepted only where oauthlib is told to
    allow it (``OAUTHLIB_INSECURE_TRANSPORT``, as the test suite's local
    double of Google does)."""
    insecure_allowed = bool(os.environ.get("OAUTHLIB_INSECURE_TRANSPORT"))
    problems = []
    for name in GOOGLE_URL_SETTINGS:
        value = str(getattr(settings, name, "") or "")
        parts = urlsplit(value)
        if parts.scheme == "https" and parts.hostname:
            continue
        if parts.scheme == "http" and parts.hostname and insecure_allowed:
            continue
        problems.append(
            f"{name} must be an https:// URL (it is {value!r}); fix the setting and restart "
            "the portal."
        )
    return problems


def outbound_network_problems() -> list[str]:
    raw = getattr(settings, "OUTBOUND_ALLOWED_NETWORKS", None)
    if raw is None:
        return []
    entries = raw.split(",") if isinstance(raw, str) else list(raw)
    problems = []
    for entry in entries:
        if not isinstance(entry, str):
            continue  # already parsed by the settings
        text = entry.strip()
        if not text:
            continue
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            problems.append(
                f"OUTBOUND_ALLOWED_NETWORKS: {text!r} is not a network in CIDR form "
                "(e.g. 10.20.0.0/16 or 2001:db8::/32)."
            )
    return problems


def cache_url_problems() -> list[str]:
    url = getattr(settings, "REDIS_URL", "") or ""
    if not url:
        return []
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES or (parts.scheme != "unix" and not parts.hostname):
        return [
            f"REDIS_URL must look like redis://host:6379/0 (or rediss://, unix://); it is not "
            f"(scheme {parts.scheme or 'missing'!r}). The throttles fall back to the database cache."
        ]
    return []


@register(Tags.security)
def check_operator_settings(app_configs, **kwargs):
    messages: list = []
    if not settings.DEBUG:
        messages += [Error(text, id="portal.E001") for text in google_url_problems()]
    messages += [Error(text, id="portal.E002") for text in outbound_network_problems()]
    messages += [Error(text, id="portal.E003") for text in cache_url_problems()]
    public = urlsplit(settings.PUBLIC_BASE_URL)
    if public.scheme not in ("http", "https") or not public.hostname:
        messages.append(
            Error(
                f"PUBLIC_BASE_URL must be an http(s) URL such as https://recordings.example.com "
                f"(it is {settings.PUBLIC_BASE_URL!r}).",
                id="portal.E004",
            )
        )
    for name in QUOTA_SETTINGS:
        if getattr(settings, name, 0) < 0:
            messages.append(
                Warning(f"{name} is negative; use 0 for unlimited.", id="portal.W001")
            )
    return messages


@register(Tags.database)
def check_cache_table(app_configs, databases=None, **kwargs):
    """The database cache needs its table (``manage.py createcachetable``).
    A warning, not an error: ``migrate`` runs this check before the table can
    exist. Without it the throttles are off (see ``portal.throttle``)."""
    backend = settings.CACHES["default"]["BACKEND"]
    if not databases or not backend.endswith("DatabaseCache"):
        return []
    from django.db import connection

    table = settings.CACHES["default"]["LOCATION"]
    tables = connection.introspection.table_names()
    # A fresh database (the first `migrate`) gets the table right after.
    if table in tables or "django_migrations" not in tables:
        return []
    return [
        Warning(
            f"The cache table {table!r} does not exist, so failed logins and API keys are not "
            "throttled: run `manage.py createcachetable` (after `migrate`).",
            id="portal.W002",
        )
    ]
