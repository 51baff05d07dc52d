"""The one interface every destination kind implements.

A destination is built from its stored configuration (non-secret values and
decrypted secrets merged into one mapping) and used inside a ``with`` block so
a connection is opened once per delivery and always closed::

    with destination_for(config) as dest:
        dest.upload(local, "room/conf/transcoded.mp4", progress)
        remote = dest.verify(local, "room/conf/transcoded.mp4")

Paths given to a destination are relative to its ``root`` and always use ``/``.
Implementations never log or put secret values in exception messages.
"""

from __future__ import annotations

import hashlib
import posixpath
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import import_module
from pathlib import Path
from typing import Any, ClassVar

from portal import egress

from .base_form import DestinationForm, PublicURLField  # noqa: F401  (the kinds import them from here)

ProgressCallback = Callable[[int], None]
"""Called with the number of bytes sent since the previous call."""

def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A package's ``__getattr__`` (PEP 562) that imports ``exports`` (name ->
    submodule) on first use, so importing one part of a kind's package (its
    URLs, when the web loads) does not load its client library."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f".{exports[name]}", package), name)

    return __getattr__


def probe_name() -> str:
    """A fresh name for the file "Test connection" writes and removes."""
    return f".portal-probe-{secrets.token_hex(4)}.txt"


class CoolOff:
    """Servers where something optional (the extra connections of "lanes")
    just failed to start, each not asked again until its time is up."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def active(self, key: str) -> bool:
        with self._lock:
            return time.monotonic() < self._until.get(key, 0.0)

    def start(self, key: str, seconds: float) -> None:
        with self._lock:
            self._until[key] = time.monotonic() + seconds


def temp_prefix(name: str) -> str:
    """What the temporary files of uploads of ``name`` start with: a retry or
    a discard removes what a cut upload left by this prefix."""
    return f".{name}.part-"


def temp_name(name: str) -> str:
    """A fresh temporary name, beside ``name``, for an upload renamed into place."""
    return temp_prefix(name) + secrets.token_hex(4)


class ResumePoint:
    """What an interrupted upload of one file left behind, kept with the file's
    row (``DeliveredFile.resume_state``, encrypted: a Drive session URI is a
    bearer capability) so the next run continues instead of starting again.

    ``state`` is what the destination saved last time (empty: start at byte 0),
    e.g. ``{"upload_id": ...}`` for S3 multipart or ``{"temp": ..., "offset": n}``
    for an append. The destination calls ``save(state)`` as soon as it has a
    point worth continuing from (the row is written at once, not at the next
    heartbeat) and ``note(message)`` for the delivery log ("resumed at 48 MiB",
    "SCP cannot resume: sending again from byte 0"). The engine clears the
    state once the file is verified."""

    def __init__(
        self,
        state: Mapping[str, Any] | None = None,
        save: Callable[[dict[str, Any]], None] | None = None,
        note: Callable[[str], None] | None = None,
    ):
        self.state: dict[str, Any] = dict(state or {})
        self._save = save
        self._note = note

    def save(self, state: Mapping[str, Any]) -> None:
        self.state = dict(state)
        if self._save is not None:
            self._save(self.state)

    def note(self, message: str) -> None:
        if self._note is not None:
            self._note(message)


HASH_CHUNK = 1024 * 1024
# Config key of the message of a ``needs_reconnect`` error (see needs_attention).
ATTENTION_KEY = "account_error"


@dataclass(frozen=True)
class Panel:
    """A card of a kind's own on the edit page: a template (see
    ``package_template``) and the context it adds to the page's."""

    template: Any
    context: dict[str, Any] = field(default_factory=dict)


def package_template(package_file: str, name: str) -> Any:
    """The template ``templates/<name>`` of the kind package whose
    ``__file__`` is ``package_file``, e.g. a settings panel: kinds keep their
    templates in their folder. ``{% include %}`` and ``render()`` accept it."""
    from django.template import engines

    # Read on each use, as the app loader does while DEBUG: a few small files.
    return engines["django"].from_string((Path(package_file).parent / "templates" / name).read_text())


def below_root(remote_path: str) -> str:
    """``remote_path`` as a path below a destination's root ("" is the root
    itself), or a permanent TransferError. The engine only builds
    ``room/conference/name`` from the portal's own ids and cleaned names; this
    keeps a destination inside its root even if one slips through (``..`` means "up" on every server, a
    backslash does on Windows FTP servers, and S3-compatible stores differ on
    whether ``a/../b`` is a literal key)."""
    parts = [part for part in remote_path.split("/") if part]
    if any(part in (".", "..") or "\\" in part for part in parts):
        raise TransferError(
            f"Refusing to write {remote_path!r}: the path escapes the destination's folder",
            permanent=True,
        )
    return "/".join(parts)


class TransferError(Exception):
    """A transfer failed. ``permanent`` errors are not retried (bad credentials,
    missing bucket, changed host key); the others are retried with backoff.
    The message is shown to administrators: it says what to fix and never
    contains a secret. ``needs_reconnect`` errors (e.g. a revoked Google grant)
    are kept on the destination until a test passes, so the settings pages
    ask for the account to be connected again (``Destination.needs_attention``)."""

    needs_reconnect: bool = False

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class AccountConnectError(Exception):
    """Connecting (or disconnecting) a destination's account failed (e.g.
    Google's OAuth). The message says what to do; it never holds a token."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class UntrustedHostKey(TransferError):
    """The server presented a host key (SSH) or certificate (FTPS) that is not
    pinned. ``fingerprint`` is ``SHA256:<base64>``; ``pinned`` is the
    fingerprint we expected, if one was pinned (a *changed* key);
    ``check_command`` is how the server's administrator reads the fingerprint
    to compare (``checked_where``: e.g. " on the server")."""

    def __init__(
        self,
        fingerprint: str,
        *,
        pinned: str | None = None,
        what: str = "host key",
        check_command: str = "",
        checked_where: str = "",
    ):
        if pinned:
            message = (
                f"The server's {what} changed: pinned {pinned}, presented {fingerprint}. "
                "If the change is expected, trust the new key."
            )
        else:
            message = f"Unknown {what} {fingerprint}: check it and trust it to continue."
        super().__init__(message, permanent=True)
        self.fingerprint = fingerprint
        self.pinned = pinned
        self.what = what
        self.check_command = check_command
        self.checked_where = checked_where


def refused_error(exc: BaseException | None) -> TransferError | None:
    """A permanent TransferError with the egress guard's words if ``exc`` (or
    what it wraps) is the guard refusing an address; retrying cannot help."""
    refused = egress.refused_in(exc)
    return TransferError(refused.message, permanent=True) if refused is not None else None


@dataclass
class LocalFile:
    """A file on the portal's disk about to be delivered. Checksums are
    computed lazily (and once) by streaming the file; ``sha256`` is usually
    known from ingest and passed in."""

    path: Path
    size: int
    sha256: str | None = None
    _md5: str | None = field(default=None, repr=False)

    @cached_property
    def md5(self) -> str:
        if self._md5:
            return self._md5
        return self._digest("md5")

    def sha256_hex(self) -> str:
        if not self.sha256:
            self.sha256 = self._digest("sha256")
        return self.sha256

    def _digest(self, algorithm: str) -> str:
        with open(self.path, "rb") as fh:
            return hashlib.file_digest(fh, algorithm).hexdigest()


class Destination:
    """Base class of every destination kind. Subclasses set ``kind``,
    ``label``, ``form_class`` and ``webhook_name`` and implement ``check``,
    ``upload`` and ``verify`` (and ``discard`` if a half-sent upload leaves
    something behind). The hooks the settings pages, the actions, the
    command and the engine call have defaults: a kind overrides only what it
    adds (a card, a button, a note for the log)."""

    kind: ClassVar[str]
    label: ClassVar[str]
    form_class: ClassVar[type[DestinationForm]]
    # Deliveries may upload this many files of one session at once through
    # one Destination instance (implementations must be thread-safe if > 1).
    parallel_files: ClassVar[int] = 1
    # Secrets set by an action (e.g. the OAuth callback), never typed into the page.
    action_only_secrets: ClassVar[tuple[str, ...]] = ()
    # EnableX's name of the kind in the file_transfer webhook (destination.name),
    # and the scheme of file URLs for kinds whose final_path is a plain path.
    webhook_name: ClassVar[str]
    url_scheme: ClassVar[str] = ""

    # What ``pinned_fingerprint`` (trusted with "Test connection") is called on
    # the pages: the server's "host key" (SSH) or "certificate" (FTPS).
    pinned_key_name: ClassVar[str] = "host key"
    # Dotted path of the kind's own URL patterns (e.g. Google's OAuth connect),
    # served under the delivery app's names; "" for none.
    urls: ClassVar[str] = ""
    # Kinds whose account is connected on the provider's consent page name the
    # service (e.g. for "No ... destination"); the command's connect-url then
    # calls start_headless_connect.
    account_service: ClassVar[str] = ""

    @classmethod
    def unavailable(cls) -> str:
        """Why this portal does not offer the kind (e.g. the operator has not
        enabled it), or "" when it is offered."""
        return ""

    # -- what the generic pages, actions and engine ask of a kind ---------------
    # Class methods: they read the saved row (``DeliveryDestination``), no
    # connection is opened.
    @classmethod
    def settings_panel(cls, destination: Any) -> Panel | None:
        """A card of the kind's own on the edit page (e.g. the connected
        Google account, the SSH key pair), or None."""
        return None

    @classmethod
    def needs_attention(cls, destination: Any) -> str:
        """Why deliveries cannot go on until someone acts on the settings page
        (e.g. "reconnect the Google account"), or "". By default the message
        of the last ``needs_reconnect`` error, kept until a test passes."""
        return str((destination.config or {}).get(ATTENTION_KEY) or "")

    @classmethod
    def list_note(cls, destination: Any) -> str:
        """A line under the destination in the list (e.g. the connected
        account), or ""."""
        return ""

    @classmethod
    def row_actions(cls, destination: Any) -> list[tuple[str, str]]:
        """(label, URL) links the list of destinations offers besides "Edit",
        e.g. "Connect Google account"."""
        return []

    @classmethod
    def on_config_change(
        cls, old: Mapping[str, Any], config: dict[str, Any], new_secrets: Mapping[str, str]
    ) -> None:
        """Adjust ``config`` (saved next) to a change of the settings from
        ``old`` (and of the secrets in ``new_secrets``), inside the saving
        transaction (e.g. drop the shown public key of a replaced private
        key). No network calls: queue them with ``transaction.on_commit``."""

    @classmethod
    def on_delete(cls, destination: Any) -> None:
        """Called inside the transaction that deletes ``destination``; work
        outside the portal (e.g. revoking a Google grant) goes through
        ``transaction.on_commit``."""

    @classmethod
    def start_headless_connect(cls, destination: Any, *, acting_user: Any) -> dict[str, str]:
        """Start connecting the account without a browser session (the
        command's connect-url): the KEY=value lines to print, e.g. the consent
        URL. Raises AccountConnectError. Only kinds with ``account_service``."""
        raise NotImplementedError

    def log_notes(self) -> list[tuple[str, str]]:
        """(event, message) entries for the delivery log after a pass over
        the files, e.g. how SCP placed them."""
        return []

    def __init__(self, config: Mapping[str, Any]):
        self.config = dict(config)
        self.root = (self.config.get("root") or "").strip("/")

    # -- connection lifecycle -------------------------------------------------
    def open(self) -> None:
        """Connect and authenticate. Raise TransferError on failure."""

    def close(self) -> None:
        """Release connections. Must not raise."""

    def expect(self, sizes: Sequence[int]) -> None:
        """A hint before a pass over files of these sizes: a kind that needs
        something more for big files (the SSH kinds: their lanes' logins)
        may start it now, while the files are checked. Must not raise."""

    def __enter__(self) -> Destination:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the interface ---------------------------------------------------------
    def check(self) -> str:
        """Write a small probe file under root and remove it again. Return a
        human message on success; raise TransferError with the exact reason
        otherwise."""
        raise NotImplementedError

    def upload(
        self,
        local: LocalFile,
        remote_path: str,
        progress: ProgressCallback,
        resume: ResumePoint | None = None,
    ) -> None:
        """Stream ``local`` to ``remote_path`` (relative to root) with bounded
        memory. The file must never be visible under its final name unless it
        is complete (temporary name + rename, multipart commit, ...). Kinds that
        can continue a half-sent file read and save ``resume`` (see ResumePoint);
        ``progress`` counts only the bytes sent in this call."""
        raise NotImplementedError

    def verify(self, local: LocalFile, remote_path: str) -> bool:
        """Return True if ``remote_path`` exists, is complete and matches
        ``local`` (size always; a checksum where the service gives one).
        Return False if it is missing or different (the engine then uploads
        it again); raise TransferError when the check itself cannot be made."""
        raise NotImplementedError

    def discard(self, remote_path: str, state: Mapping[str, Any]) -> None:
        """Remove what a half-sent upload of ``remote_path`` left behind (the
        ``state`` it saved in its ResumePoint: an unfinished multipart upload,
        uncommitted blocks, a temporary file), when the delivery gives up or
        is sent again from scratch. Best effort; kinds that leave nothing
        behind keep this default."""

    def final_path(self, remote_path: str) -> str:
        """The path as reported in the file_transfer webhook, e.g.
        ``s3://bucket/root/room/conf/file`` or ``/root/room/conf/file``."""
        return "/" + self.full_path(remote_path)

    def describe(self) -> str:
        """Short, secret-free description for logs and pages, e.g.
        ``s3://bucket/root`` or ``sftp://rec@host:22/root``."""
        return self.kind

    def webhook_destination(self) -> dict[str, str]:
        """``host`` and ``account`` of the file_transfer webhook's destination:
        where the files went and as whom (never a secret)."""
        return {"host": str(self.config.get("host") or ""),
                "account": str(self.config.get("username") or "")}  # fmt: skip

    def file_url(self, final_path: str) -> str:
        """``final_path`` as a URL, e.g. ``sftp://host/root/room/conf/file``."""
        if "://" in final_path:
            return final_path
        host = self.webhook_destination()["host"]
        return f"{self.url_scheme or self.kind}://{host}/{final_path.lstrip('/')}"

    # -- helpers -----------------------------------------------------------------
    def full_path(self, remote_path: str) -> str:
        """``remote_path`` under the root; a path that would climb out is refused."""
        relative = below_root(remote_path)
        return posixpath.join(self.root, relative) if self.root else relative
