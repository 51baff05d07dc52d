"""One settings module, read from the environment (or ``.env``) with django-environ.

Defaults give the embedded setup of ``make run``: SQLite, the ORM task broker
and recording files under ``DATA_DIR``. Production sets ``DEBUG=false`` and
the variables documented in README.md.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "var"))).resolve()


def _secret_from_data_dir(name: str) -> str | None:
    """``make run`` writes generated secrets into DATA_DIR once (see
    ``portal.secrets``); read them when the environment does not set them."""
    path = DATA_DIR / "secrets" / name
    return path.read_text().strip() if path.exists() else None


DEBUG = env.bool("DEBUG", default=False)
# The test suite runs without generated secrets; it gets the fixed development
# keys below instead (never used when DEBUG is off outside tests).
TESTING = "pytest" in sys.modules or env.bool("PORTAL_TESTING", default=False)
SECRET_KEY = env.str("SECRET_KEY", default=None) or _secret_from_data_dir("secret_key") or ""
if not SECRET_KEY:
    if not DEBUG and not TESTING:
        raise environ.ImproperlyConfigured(
            "Set SECRET_KEY (or run `make run`, which generates one into DATA_DIR)."
        )
    SECRET_KEY = "insecure-development-key-do-not-use-in-production-000000000000"

FIELD_ENCRYPTION_KEYS = [
    key.strip()
    for key in (
        env.str("FIELD_ENCRYPTION_KEYS", default=None)
        or _secret_from_data_dir("field_encryption_keys")
        or ""
    ).split(",")
    if key.strip()
]
if not FIELD_ENCRYPTION_KEYS and (DEBUG or TESTING):
    # A fixed key for development and tests only; production must set its own.
    FIELD_ENCRYPTION_KEYS = ["dGVzdC1vbmx5LWtleS1kby1ub3QtdXNlLWl0LTAwMDA="]

PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[PUBLIC_BASE_URL])
REDIS_URL = env.str("REDIS_URL", default="")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "portal",  # before django_q: its qcluster command stops cleanly (portal/workers.py)
    "django_q",
    "axes",
    "projects",
    "webhooks",
    "recordings",
    "delivery",
    "demo",  # `make run`'s webhook inbox; its pages are 404 unless DEMO_WEBHOOK_INBOX
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'portal.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout let the web server and qcluster share the file.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "projects:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]

# The portal's own recording store. File system under DATA_DIR by default;
# set RECORDING_STORAGE_BACKEND=storages.backends.s3.S3Storage (and the
# AWS_* variables of django-storages) to keep recordings in a bucket.
RECORDINGS_ROOT = DATA_DIR / "recordings"
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(DATA_DIR / "media")},
    },
    "recordings": {
        "BACKEND": env.str(
            "RECORDING_STORAGE_BACKEND", default="django.core.files.storage.FileSystemStorage"
        ),
        "OPTIONS": (
            {"location": str(RECORDINGS_ROOT)}
            if not env.str("RECORDING_STORAGE_BACKEND", default="")
            else {}
        ),
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if STORAGES["recordings"]["BACKEND"] == "storages.backends.s3.S3Storage":
    from boto3.s3.transfer import TransferConfig

    # Uploads go in 8 MiB parts, 4 at a time, at most 4 parts read ahead: an
    # upload of any size holds about 64 MiB (bench/README.md, "--store s3").
    S3_TRANSFER = TransferConfig(
        multipart_threshold=8 * 1024**2, multipart_chunksize=8 * 1024**2, max_concurrency=4
    )
    S3_TRANSFER.max_in_memory_upload_chunks = 4
    STORAGES["recordings"]["OPTIONS"] = {
        "bucket_name": env.str("AWS_STORAGE_BUCKET_NAME"),
        "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default="") or None,
        "access_key": env.str("AWS_ACCESS_KEY_ID", default="") or None,
        "secret_key": env.str("AWS_SECRET_ACCESS_KEY", default="") or None,
        "region_name": env.str("AWS_S3_REGION_NAME", default="") or None,
        "file_overwrite": True,  # recordings/store.py refuses a taken name itself
        "transfer_config": S3_TRANSFER,
    }

# Recording behaviour
RECORDING_LINK_MAX_AGE_HOURS = env.int("RECORDING_LINK_MAX_AGE_HOURS", default=72)
RECORDING_RETENTION_HOURS = env.int("RECORDING_RETENTION_HOURS", default=72)
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_BYTES", default=8 * 1024**3)
# Untrusted media (recordings/ffmpeg.py): the longest recording accepted, and
# the address space one ffmpeg run may take (0: 2 GiB + 512 MiB per CPU).
MEDIA_MAX_SECONDS = env.int("MEDIA_MAX_SECONDS", default=6 * 3600)
MEDIA_FFMPEG_MAX_MEMORY_BYTES = env.int("MEDIA_FFMPEG_MAX_MEMORY_BYTES", default=0)
# Serve protected files through nginx (X-Accel-Redirect) instead of Django.
RECORDINGS_X_ACCEL_PREFIX = env.str("RECORDINGS_X_ACCEL_PREFIX", default="")
# Optional separate origin for recording files and /dl/ links (e.g.
# https://files.example.com): a file served there shares no cookies and no
# origin with the portal's pages (docs/deploy.md).
RECORDINGS_PUBLIC_BASE_URL = env.str("RECORDINGS_PUBLIC_BASE_URL", default="").rstrip("/")
# Live recording and streaming: recorders shared by every project; a start
# with none free waits (FIFO) at most LIVE_RECORDING_MAX_WAIT_SECONDS.
LIVE_RECORDING_SLOTS = env.int("LIVE_RECORDING_SLOTS", default=10)
LIVE_RECORDING_MAX_WAIT_SECONDS = env.int("LIVE_RECORDING_MAX_WAIT_SECONDS", default=600)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_TEMP_DIR = None  # ingest streams with its own handler into DATA_DIR
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# Delivery behaviour (retry backoff 1 min -> 6 h, then failed)
DELIVERY_RETRY_BASE_SECONDS = env.int("DELIVERY_RETRY_BASE_SECONDS", default=60)
DELIVERY_RETRY_MAX_SECONDS = env.int("DELIVERY_RETRY_MAX_SECONDS", default=6 * 3600)
DELIVERY_MAX_ATTEMPTS = env.int("DELIVERY_MAX_ATTEMPTS", default=12)
DELIVERY_LEASE_SECONDS = env.int("DELIVERY_LEASE_SECONDS", default=120)

# Egress guard (portal/egress.py): networks exempt from "public addresses only",
# e.g. 127.0.0.0/8 for the test suite's and the demo's loopback servers.
OUTBOUND_ALLOWED_NETWORKS = env.list("OUTBOUND_ALLOWED_NETWORKS", default=[])
for _network in OUTBOUND_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise environ.ImproperlyConfigured(
            f"OUTBOUND_ALLOWED_NETWORKS: {_network!r} is not a network such as 127.0.0.0/8"
        ) from None

# Google Drive (OAuth client of the operator; URLs overridable for tests)
GOOGLE_OAUTH_CLIENT_ID = env.str("GOOGLE_OAUTH_CLIENT_ID", default="")
GOOGLE_OAUTH_CLIENT_SECRET = env.str("GOOGLE_OAUTH_CLIENT_SECRET", default="")
GOOGLE_OAUTH_AUTH_URI = env.str(
    "GOOGLE_OAUTH_AUTH_URI", default="https://accounts.google.com/o/oauth2/auth"
)
GOOGLE_OAUTH_TOKEN_URI = env.str("GOOGLE_OAUTH_TOKEN_URI", default="https://oauth2.googleapis.com/token")
GOOGLE_OAUTH_REVOKE_URI = env.str(
    "GOOGLE_OAUTH_REVOKE_URI", default="https://oauth2.googleapis.com/revoke"
)
GOOGLE_DRIVE_API_BASE = env.str("GOOGLE_DRIVE_API_BASE", default="https://www.googleapis.com/")

# django-q2: the ORM broker keeps tasks in the database (delivery receipts);
# Redis only when REDIS_URL is set. timeout must stay below retry.
Q_CLUSTER = {
    "name": "portal",
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": env.int("Q_TIMEOUT", default=3 * 3600),
    "retry": env.int("Q_RETRY", default=3 * 3600 + 600),
    "max_attempts": 1,
    "queue_limit": 50,
    "bulk": 1,
    "catch_up": False,
    "ack_failures": True,
    # Seconds an idle cluster waits before asking the ORM broker again: on
    # average half of it is added to every hop (session end → delivery,
    # delivery → webhook send). Both clusters idle at 4.8 % of a core with
    # 0.2 s (django-q2's default), 7.8 % with 0.1 s, 14.5 % with 0.05 s
    # (bench/README.md); the Redis broker does not poll.
    "poll": env.float("Q_POLL", default=0.1),
    "save_limit": 1000,
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
# Media processing has its own cluster and queue (`Q_CLUSTER_NAME=processing
# manage.py qcluster`), so deliveries and webhook sends never wait behind a
# transcode. It inherits everything above (same timeout and retry, which the
# stalled-processing sweep relies on) except its number of workers: one
# ffmpeg already uses every core it is given. Schedules stay on the default
# cluster (django-q2 runs schedules without a cluster only there).
PROCESSING_CLUSTER = "processing"
Q_CLUSTER["ALT_CLUSTERS"] = {
    PROCESSING_CLUSTER: {"workers": env.int("Q_PROCESSING_WORKERS", default=1)},
}

# Folders on this machine that "Local or NFS folder" destinations may write
# into (comma-separated absolute paths). Empty: the kind is not offered.
DELIVERY_LOCAL_ROOTS = [root for root in env.list("DELIVERY_LOCAL_ROOTS", default=[]) if root]
if not all(Path(root).is_absolute() for root in DELIVERY_LOCAL_ROOTS):
    raise environ.ImproperlyConfigured("DELIVERY_LOCAL_ROOTS must list absolute folders.")
# The demo's built-in webhook receiver (demo/inbox.py), set by `make run`
# only: off, its URLs are 404, so no tenant can use it as a free receiver.
DEMO_WEBHOOK_INBOX = env.bool("DEMO_WEBHOOK_INBOX", default=False)

# The cache every gunicorn worker shares: failed-credential counts (APP_KEY
# and recording-file throttles) must hold across processes. The database
# cache by default (`manage.py createcachetable` runs wherever `migrate` does),
# Redis when REDIS_URL is set. A REDIS_URL that is not a redis:// URL is
# reported by `manage.py check` (portal.checks) and the database cache is used.
CACHE_TABLE = "portal_cache"
if REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "portal",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": CACHE_TABLE,
        }
    }
# Per-process memos that need no sharing (the report's day chart): no query.
CACHES["local"] = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}

# Failed APP_KEY checks per (APP_ID, client address) before 429, checked
# before any PBKDF2 work; only wrong keys that cost a PBKDF2 run are counted,
# so fresh wrong keys cannot burn the portal's CPU (portal.api_auth).
API_AUTH_FAILURE_LIMIT = env.int("API_AUTH_FAILURE_LIMIT", default=10)
API_AUTH_FAILURE_WINDOW_SECONDS = env.int("API_AUTH_FAILURE_WINDOW_SECONDS", default=300)

# Per-project quotas (0 = unlimited), enforced by the APIs and the pages.
PROJECT_MAX_ROOMS = env.int("PROJECT_MAX_ROOMS", default=1000)
PROJECT_MAX_STORAGE_BYTES = env.int("PROJECT_MAX_STORAGE_BYTES", default=500 * 1024**3)
PROJECT_MAX_LIVE_SESSIONS = env.int("PROJECT_MAX_LIVE_SESSIONS", default=50)

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["portal.api_auth.AppKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["portal.api_auth.HasProject"],
    "EXCEPTION_HANDLER": "portal.api.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Recording Delivery Portal API",
    "DESCRIPTION": "Video API (EnableX-compatible; served under /video/v2/ and, for EnableX's "
    "sample apps, under /v1/ too; trailing slash optional) and the ingest API of the media server.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "RecorderStateEnum": "recordings.ingest_api.RECORDER_STATES",
        "SessionStateEnum": "recordings.ingest_api.SESSION_STATES",
    },
}

# Health (portal/health.py). Every cluster (ALT_CLUSTERS included, they inherit
# "cache") leaves its heartbeats in a database table, per cluster name, where
# `manage.py health` on any machine reads them (see portal/heartbeats.py);
# `migrate` creates the table.
CACHES["cluster_heartbeats"] = {
    "BACKEND": "portal.heartbeats.ClusterHeartbeatCache",
    "LOCATION": "portal_cluster_heartbeats",
}
Q_CLUSTER["cache"] = "cluster_heartbeats"
# A cluster whose last heartbeat is older than this is dead (they come every 0.5 s).
HEALTH_HEARTBEAT_MAX_AGE_SECONDS = env.int("HEALTH_HEARTBEAT_MAX_AGE_SECONDS", default=30)
# Longest a due delivery / a due webhook message may wait for a worker.
HEALTH_DELIVERY_MAX_WAIT_SECONDS = env.int("HEALTH_DELIVERY_MAX_WAIT_SECONDS", default=1800)
HEALTH_WEBHOOK_MAX_WAIT_SECONDS = env.int("HEALTH_WEBHOOK_MAX_WAIT_SECONDS", default=600)
# Load balancers probe /healthz over plain HTTP on the backend.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# Login throttling (django-axes)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = 0.25  # hours
# Lock the pair (username, address): a stranger guessing a user's password
# locks out only himself, never that user nor everyone behind the proxy. The
# address is the audit log's (X-Real-IP trusted only from loopback nginx).
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "projects.audit.client_ip"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)

# Content-Security-Policy (django-csp 4): everything is served locally.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "media-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
    },
}

if RECORDINGS_PUBLIC_BASE_URL:
    # The report plays videos and shows posters from the file origin.
    for _directive in ("media-src", "img-src"):
        CONTENT_SECURITY_POLICY["DIRECTIVES"][_directive].append(RECORDINGS_PUBLIC_BASE_URL)

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG and PUBLIC_BASE_URL.startswith("https://"):
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Download-link tokens never reach the log (portal.log_redaction).
    "filters": {"redact_links": {"()": "portal.log_redaction.RedactDownloadTokens"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_links"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Only our handler (Django's default one would skip the redaction).
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # botocore/urllib3 debug logs may carry signed headers; keep them quiet.
        "botocore": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        "paramiko": {"level": "WARNING"},
        "azure": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
    },
}
