"""A test double of Google's OAuth 2.0 endpoints and the Drive v3 API.

Google ships no emulator for Drive (S3 has moto, Azure has Azurite, Google has
nothing for Drive or its OAuth server), so this module implements, over real
HTTP on a free loopback port, the subset the portal uses, with the wire format
of the real services so the real ``google-auth-oauthlib`` and
``google-api-python-client`` code runs against it unchanged:

- ``GET /o/oauth2/auth``: a consent page that consents at once and redirects
  back to ``redirect_uri`` with ``code`` and ``state`` (so a browser can follow it);
- ``POST /token``: ``authorization_code`` (with PKCE) and ``refresh_token`` grants,
  ``invalid_grant`` once a grant is revoked; ``POST /revoke``;
- ``/drive/v3/about``, ``/drive/v3/files`` (list with the subset of ``q`` the
  portal writes, get, create, metadata update, delete) and
  ``/upload/drive/v3/files`` (multipart and resumable uploads, with
  ``Content-Range`` chunks, ``308`` + ``Range`` and ``bytes */N`` status queries).

Files live in memory, per account. Knobs for tests: ``fail_next_chunks`` (drop
the connection or answer 503), ``expire_access_tokens``, ``revoke_all``,
``hold_folder_creates`` (make concurrent creators race), ``counts`` of requests.

The double speaks plain HTTP, so oauthlib needs ``OAUTHLIB_INSECURE_TRANSPORT``;
the ``gdrive`` fixture sets it together with the portal's settings.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

FOLDER = "application/vnd.google-apps.folder"
CLIENT_ID = "portal-test.apps.googleusercontent.com"
CLIENT_SECRET = "double-client-secret"
DEFAULT_EMAIL = "recordings.owner@example.com"
DEFAULT_FIELDS = ("kind", "id", "name", "mimeType")


class DriveApiError(Exception):
    def __init__(self, status: int, message: str, reason: str = "invalid"):
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.status,
                "message": self.message,
                "errors": [{"domain": "global", "reason": self.reason, "message": self.message}],
            }
        }


@dataclass
class Grant:
    email: str
    scopes: list[str]
    revoked: bool = False


@dataclass
class DriveFile:
    id: str
    name: str
    mimeType: str
    parents: list[str]
    owner: str
    createdTime: str
    content: bytes | None = None
    trashed: bool = False

    def resource(self) -> dict[str, Any]:
        res: dict[str, Any] = {
            "kind": "drive#file",
            "id": self.id,
            "name": self.name,
            "mimeType": self.mimeType,
            "parents": list(self.parents),
            "createdTime": self.createdTime,
            "modifiedTime": self.createdTime,
            "trashed": self.trashed,
        }
        if self.content is not None:
            res["size"] = str(len(self.content))
            res["md5Checksum"] = hashlib.md5(self.content).hexdigest()
        return res


@dataclass
class UploadSession:
    owner: str
    metadata: dict[str, Any]
    file_id: str | None  # set for files.update
    total: int | None
    data: bytearray = field(default_factory=bytearray)
    result: dict[str, Any] | None = None


# -- small parsers for the parts of Drive's query language we serve ---------------------------

_STRING = r"'((?:[^'\\]|\\.)*)'"
_CLAUSES = [
    (re.compile(rf"name\s*=\s*{_STRING}"), "name"),
    (re.compile(rf"{_STRING}\s+in\s+parents"), "parent"),
    (re.compile(rf"mimeType\s*=\s*{_STRING}"), "mime"),
    (re.compile(rf"mimeType\s*!=\s*{_STRING}"), "not_mime"),
    (re.compile(r"trashed\s*=\s*(true|false)"), "trashed"),
]


def parse_q(q: str) -> list[tuple[str, str]]:
    """``name = 'x' and 'p' in parents and mimeType = '...' and trashed = false``."""
    clauses, rest = [], q.strip()
    while rest:
        for pattern, kind in _CLAUSES:
            m = pattern.match(rest)
            if m:
                clauses.append((kind, re.sub(r"\\(.)", r"\1", m.group(1))))
                rest = rest[m.end() :].strip()
                break
        else:
            raise DriveApiError(400, f"Invalid Value: unsupported query near {rest[:40]!r}")
        if rest:
            if not rest.startswith("and "):
                raise DriveApiError(400, f"Invalid Value: expected 'and' near {rest[:40]!r}")
            rest = rest[4:].strip()
    return clauses


def parse_fields(spec: str | None) -> dict[str, Any] | None:
    """``files(id,name),nextPageToken`` -> {"files": {"id": {}, "name": {}}, ...}; None = all."""
    if spec is None or spec.strip() == "*":
        return None
    tree: dict[str, Any] = {}
    depth, start, items = 0, 0, []
    for i, ch in enumerate(spec + ","):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(spec[start:i].strip())
            start = i + 1
    for item in filter(None, items):
        name, _, sub = item.partition("(")
        tree[name.strip()] = parse_fields(sub[:-1]) if sub else {}
    return tree


def select(value: Any, tree: dict[str, Any] | None) -> Any:
    if tree is None or not tree:
        return value
    if isinstance(value, list):
        return [select(v, tree) for v in value]
    return {k: select(value[k], sub) for k, sub in tree.items() if k in value}


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _now_rfc3339(previous: str) -> str:
    """Now, in Drive's format, strictly after ``previous`` (distinct creations
    get distinct times, as they do in Drive)."""
    now = datetime.now(UTC)
    if previous and _rfc3339(now) <= previous:
        last = datetime.strptime(previous, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        now = last + timedelta(milliseconds=1)
    return _rfc3339(now)


class DriveDouble:
    """State and behaviour of the double; ``serve()`` starts its HTTP server."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.client_id, self.client_secret = CLIENT_ID, CLIENT_SECRET
        self.base_url = ""
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.consent_email = DEFAULT_EMAIL
            self.consent_scopes: list[str] | None = None  # what the user grants; None: as asked
            self.grants: dict[str, Grant] = {}  # refresh token -> grant
            self.access: dict[str, tuple[str, float]] = {}  # access token -> (refresh, expiry)
            self.codes: dict[str, dict[str, Any]] = {}
            self.files: dict[str, DriveFile] = {}
            self.roots: dict[str, str] = {}
            self.uploads: dict[str, UploadSession] = {}
            self.counts: Counter[str] = Counter()
            self.chunk_failures: list[str] = []
            self.folder_barrier: threading.Barrier | None = None
            self.last_authorization: dict[str, str] = {}
            self.last_created = ""

    # -- knobs ------------------------------------------------------------------------------
    def fail_next_chunks(self, n: int, mode: str = "drop") -> None:
        """The next ``n`` chunk PUTs fail: ``drop`` reads half the chunk, keeps
        those bytes and resets the connection; ``503`` reads it and answers 503;
        ``lost_response`` stores the whole chunk (completing the file if it was
        the last) and resets the connection instead of answering."""
        assert mode in ("drop", "503", "lost_response")
        with self.lock:
            self.chunk_failures = [mode] * n

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access = {tok: (rt, 0.0) for tok, (rt, _exp) in self.access.items()}

    def revoke_all(self) -> None:
        with self.lock:
            for grant in self.grants.values():
                grant.revoked = True

    def hold_folder_creates(self, parties: int) -> None:
        """Folder creations wait until ``parties`` of them are in flight (or 5 s
        pass), so concurrent find-or-create really races."""
        self.folder_barrier = threading.Barrier(parties, timeout=5)

    def grant(self, email: str = DEFAULT_EMAIL, scopes: tuple[str, ...] | None = None) -> str:
        """Issue a refresh token without the browser dance."""
        token = "1//" + secrets.token_urlsafe(24)
        with self.lock:
            self.grants[token] = Grant(email, [DRIVE_FILE] if scopes is None else list(scopes))
        return token

    # -- inspection -------------------------------------------------------------------------
    def root_id(self, email: str = DEFAULT_EMAIL) -> str:
        with self.lock:
            if email not in self.roots:
                root = DriveFile("0A" + secrets.token_hex(12), "My Drive", FOLDER, [], email, "")
                self.files[root.id] = root
                self.roots[email] = root.id
            return self.roots[email]

    def children(self, parent: str, *, email: str = DEFAULT_EMAIL) -> list[DriveFile]:
        parent = self.root_id(email) if parent == "root" else parent
        with self.lock:
            found = [f for f in self.files.values() if parent in f.parents and not f.trashed]
        return sorted(found, key=lambda f: (f.createdTime, f.id))

    def walk(self, path: str, *, email: str = DEFAULT_EMAIL) -> list[DriveFile]:
        """All live files at ``a/b/c`` (several if names are duplicated)."""
        level = [self.files[self.root_id(email)]]
        for part in filter(None, path.split("/")):
            level = [c for f in level for c in self.children(f.id, email=email) if c.name == part]
        return level

    def make_folder(self, name: str, parent: str = "root", *, email: str = DEFAULT_EMAIL) -> str:
        return self._create(email, {"name": name, "mimeType": FOLDER, "parents": [parent]}, None).id

    # -- OAuth ------------------------------------------------------------------------------
    def consent(self, params: dict[str, str]) -> str:
        self.last_authorization = dict(params)
        if params.get("client_id") != self.client_id:
            raise DriveApiError(400, "invalid_client")
        code = "4/" + secrets.token_urlsafe(24)
        scopes = self.consent_scopes
        if scopes is None:
            scopes = params.get("scope", "").split()
        with self.lock:
            self.codes[code] = {
                "redirect_uri": params["redirect_uri"],
                "scopes": scopes,
                "challenge": params.get("code_challenge"),
                "email": self.consent_email,
            }
        query = {"code": code, "state": params.get("state", ""), "scope": " ".join(scopes)}
        return params["redirect_uri"] + "?" + urlencode(query)

    def token(self, form: dict[str, str], basic: tuple[str, str] | None) -> tuple[int, dict]:
        client_id, secret = basic or (form.get("client_id"), form.get("client_secret"))
        if client_id != self.client_id or secret != self.client_secret:
            return 401, {"error": "invalid_client", "error_description": "Unauthorized"}
        bad = {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
        with self.lock:
            if form.get("grant_type") == "authorization_code":
                self.counts["token.code"] += 1
                entry = self.codes.pop(form.get("code", ""), None)
                if not entry or entry["redirect_uri"] != form.get("redirect_uri"):
                    return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
                if entry["challenge"]:
                    digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
                    if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != entry["challenge"]:
                        return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
                refresh = self.grant(entry["email"], tuple(entry["scopes"]))
                body = self._issue_access(refresh)
                body["refresh_token"] = refresh
                if "openid" in entry["scopes"]:
                    body["id_token"] = _fake_id_token(entry["email"], self.client_id)
                return 200, body
            if form.get("grant_type") == "refresh_token":
                self.counts["token.refresh"] += 1
                grant = self.grants.get(form.get("refresh_token", ""))
                if not grant or grant.revoked:
                    return 400, bad
                return 200, self._issue_access(form["refresh_token"])
        return 400, {"error": "unsupported_grant_type"}

    def _issue_access(self, refresh: str) -> dict[str, Any]:
        token = "ya29." + secrets.token_urlsafe(24)
        self.access[token] = (refresh, time.time() + 3599)
        scope = " ".join(self.grants[refresh].scopes)
        return {"access_token": token, "expires_in": 3599, "scope": scope, "token_type": "Bearer"}

    def revoke(self, token: str) -> tuple[int, dict]:
        with self.lock:
            self.counts["token.revoke"] += 1
            refresh = self.access[token][0] if token in self.access else token
            grant = self.grants.get(refresh)
            if not grant or grant.revoked:
                return 400, {
                    "error": "invalid_token",
                    "error_description": "Token expired or revoked",
                }
            grant.revoked = True
            return 200, {}

    def authenticate(self, header: str | None) -> str:
        token = (header or "").removeprefix("Bearer ").strip()
        with self.lock:
            refresh, expiry = self.access.get(token, ("", 0.0))
            grant = self.grants.get(refresh)
            if not grant or grant.revoked or expiry < time.time():
                raise DriveApiError(
                    401, "Request had invalid authentication credentials.", "authError"
                )
            if DRIVE_FILE not in grant.scopes:
                raise DriveApiError(403, "Insufficient Permission", "insufficientPermissions")
            return grant.email

    # -- Drive ------------------------------------------------------------------------------
    def _get(self, email: str, file_id: str) -> DriveFile:
        file_id = self.root_id(email) if file_id == "root" else file_id
        f = self.files.get(file_id)
        if not f or f.owner != email:
            raise DriveApiError(404, f"File not found: {file_id}.", "notFound")
        return f

    def list_files(self, email: str, params: dict[str, str]) -> dict[str, Any]:
        clauses = parse_q(params.get("q", ""))
        with self.lock:
            out = []
            for f in sorted(self.files.values(), key=lambda f: (f.createdTime, f.id)):
                if f.owner != email or f.id in self.roots.values():
                    continue
                if all(_matches(f, kind, value, self.root_id(email)) for kind, value in clauses):
                    out.append(f.resource())
        if not any(kind == "trashed" for kind, _v in clauses):
            out = [r for r in out if not r["trashed"]]
        start = int(params.get("pageToken") or 0)
        size = min(int(params.get("pageSize") or 100), 1000)
        body: dict[str, Any] = {"kind": "drive#fileList", "files": out[start : start + size]}
        if start + size < len(out):
            body["nextPageToken"] = str(start + size)
        return body

    def _create(self, email: str, meta: dict[str, Any], content: bytes | None) -> DriveFile:
        if meta.get("mimeType") == FOLDER and self.folder_barrier is not None:
            try:
                self.folder_barrier.wait()
            except threading.BrokenBarrierError:
                pass
        with self.lock:
            parents = [self._get(email, p).id for p in meta.get("parents") or ["root"]]
            self.last_created = _now_rfc3339(self.last_created)
            f = DriveFile(
                id="1" + secrets.token_urlsafe(24).replace("-", "x").replace("_", "y"),
                name=meta.get("name", "Untitled"),
                mimeType=meta.get("mimeType") or "application/octet-stream",
                parents=parents,
                owner=email,
                createdTime=self.last_created,
                content=None if meta.get("mimeType") == FOLDER else (content or b""),
            )
            self.files[f.id] = f
            self.counts["files.create.folder" if f.mimeType == FOLDER else "files.create"] += 1
            return f

    def delete(self, email: str, file_id: str) -> None:
        with self.lock:
            doomed = [self._get(email, file_id)]
            while doomed:
                f = doomed.pop()
                self.files.pop(f.id, None)
                doomed.extend(c for c in list(self.files.values()) if f.id in c.parents)

    def start_upload(self, email: str, meta: dict, file_id: str | None, total: int | None) -> str:
        with self.lock:
            if file_id:
                self._get(email, file_id)
            upload_id = secrets.token_urlsafe(18)
            self.uploads[upload_id] = UploadSession(email, meta, file_id, total)
            return upload_id

    def finish_upload(self, session: UploadSession) -> dict[str, Any]:
        with self.lock:
            if session.result is not None:
                return session.result
            if session.file_id:
                f = self._get(session.owner, session.file_id)
                f.content = bytes(session.data)
                f.name = session.metadata.get("name", f.name)
                self.counts["files.update"] += 1
            else:
                f = self._create(session.owner, session.metadata, bytes(session.data))
            session.result = f.resource()
            return session.result


def _matches(f: DriveFile, kind: str, value: str, root: str) -> bool:
    if kind == "name":
        return f.name == value
    if kind == "parent":
        return (root if value == "root" else value) in f.parents
    if kind == "mime":
        return f.mimeType == value
    if kind == "not_mime":
        return f.mimeType != value
    return f.trashed == (value == "true")


def _fake_id_token(email: str, audience: str) -> str:
    def enc(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims = {"iss": "https://accounts.google.com", "aud": audience, "email": email}
    return f"{enc({'alg': 'none'})}.{enc(claims)}.signature"


DRIVE_FILE = "https://www.googleapis.com/auth/drive.file"
_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    double: DriveDouble

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        d = self.double
        with d.lock:
            d.counts["requests"] += 1
        try:
            if url.path == "/o/oauth2/auth" and self.command == "GET":
                self._send(302, None, {"Location": d.consent(params)})
            elif url.path == "/token" and self.command == "POST":
                form = {k: v[-1] for k, v in parse_qs(self._body().decode()).items()}
                self._send(*d.token(form, _basic(self.headers.get("Authorization"))))
            elif url.path == "/revoke" and self.command == "POST":
                form = {k: v[-1] for k, v in parse_qs(self._body().decode()).items()}
                self._send(*d.revoke(form.get("token") or params.get("token", "")))
            elif "upload_id" in params and self.command == "PUT":
                self._chunk(params["upload_id"])
            else:
                email = d.authenticate(self.headers.get("Authorization"))
                self._drive(email, url.path, params)
        except DriveApiError as exc:
            self._send(exc.status, exc.body())

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def _drive(self, email: str, path: str, params: dict[str, str]) -> None:
        d, method = self.double, self.command
        fields = parse_fields(params.get("fields"))
        m = re.fullmatch(r"/(upload/)?drive/v3/files(?:/([^/]+))?", path)
        if path == "/drive/v3/about" and method == "GET":
            d.counts["about.get"] += 1
            user = {"kind": "drive#user", "displayName": email.split("@")[0], "emailAddress": email}
            self._send(200, select({"kind": "drive#about", "user": user}, fields))
        elif not m:
            raise DriveApiError(404, f"Not Found: {method} {path}", "notFound")
        elif m.group(1):
            self._upload(email, params, m.group(2), fields)
        elif method == "GET" and not m.group(2):
            d.counts["files.list"] += 1
            fields = fields or {"kind": {}, "files": dict.fromkeys(DEFAULT_FIELDS, {})}
            self._send(200, select(d.list_files(email, params), fields))
        elif method == "POST" and not m.group(2):
            f = d._create(email, json.loads(self._body() or b"{}"), None)
            self._send(200, select(f.resource(), fields or dict.fromkeys(DEFAULT_FIELDS, {})))
        elif method == "GET":
            d.counts["files.get"] += 1
            f = d._get(email, m.group(2))
            self._send(200, select(f.resource(), fields or dict.fromkeys(DEFAULT_FIELDS, {})))
        elif method == "PATCH":
            meta = json.loads(self._body() or b"{}")
            with d.lock:
                f = d._get(email, m.group(2))
                f.name = meta.get("name", f.name)
                f.trashed = bool(meta.get("trashed", f.trashed))
            self._send(200, select(f.resource(), fields or dict.fromkeys(DEFAULT_FIELDS, {})))
        elif method == "DELETE":
            d.counts["files.delete"] += 1
            d.delete(email, m.group(2))
            self._send(204)
        else:
            raise DriveApiError(405, f"Method not allowed: {method} {path}")

    def _upload(self, email: str, params: dict, file_id: str | None, fields: Any) -> None:
        d, kind = self.double, params.get("uploadType")
        fields = fields or dict.fromkeys(DEFAULT_FIELDS, {})
        if kind == "resumable":
            meta = json.loads(self._body() or b"{}")
            if self.headers.get("X-Upload-Content-Type") and not file_id:
                meta.setdefault("mimeType", self.headers["X-Upload-Content-Type"])
            total = self.headers.get("X-Upload-Content-Length")
            upload_id = d.start_upload(email, meta, file_id, int(total) if total else None)
            d.counts["upload.start"] += 1
            query = urlencode({**params, "upload_id": upload_id})
            location = (
                f"{d.base_url}upload/drive/v3/files{'/' + file_id if file_id else ''}?{query}"
            )
            self._send(200, None, {"Location": location})
        elif kind == "multipart":
            d.counts["upload.multipart"] += 1
            ctype = self.headers.get("Content-Type", "")
            raw = b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + self._body()
            parts = BytesParser(policy=HTTP).parsebytes(raw).iter_parts()
            meta_part, media_part = next(parts), next(parts)
            meta = json.loads(meta_part.get_content())
            content = media_part.get_payload(decode=True) or b""
            meta.setdefault("mimeType", media_part.get_content_type())
            if file_id:
                session = UploadSession(email, meta, file_id, len(content), bytearray(content))
                self._send(200, select(d.finish_upload(session), fields))
            else:
                self._send(200, select(d._create(email, meta, content).resource(), fields))
        else:
            raise DriveApiError(400, f"Unsupported uploadType {kind!r}")

    def _chunk(self, upload_id: str) -> None:
        d = self.double
        session = d.uploads.get(upload_id)
        if session is None:
            self._body()
            raise DriveApiError(404, "Upload session not found or expired.", "notFound")
        content_range = self.headers.get("Content-Range", "")
        if content_range.startswith("bytes */"):
            d.counts["upload.status"] += 1
            self._body()
            return self._progress(session)
        d.counts["upload.chunk"] += 1
        with d.lock:
            failure = d.chunk_failures.pop(0) if d.chunk_failures else None
        length = int(self.headers.get("Content-Length") or 0)
        m = _RANGE.fullmatch(content_range)
        if not m and length:
            self._body()
            raise DriveApiError(400, f"Invalid Content-Range {content_range!r}")
        start = int(m.group(1)) if m else len(session.data)
        if m and m.group(3) != "*":
            session.total = int(m.group(3))
        if failure == "drop":
            self._append(session, start, self.rfile.read(length // 2))
            return self._reset()
        data = self._body()
        if failure == "503":
            raise DriveApiError(503, "Service Unavailable", "backendError")
        if start > len(session.data):
            raise DriveApiError(400, f"Chunk starts at {start}, only {len(session.data)} received")
        self._append(session, start, data)
        if m is None:
            session.total = len(session.data)
        if failure == "lost_response":
            self._progress(session, send=False)
            return self._reset()
        return self._progress(session)

    def _reset(self) -> None:
        # A reset rather than a close: the client sees a lost connection, not a short answer.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _append(self, session: UploadSession, start: int, data: bytes) -> None:
        with self.double.lock:
            skip = len(session.data) - start
            if 0 <= skip < len(data):
                session.data += data[skip:]

    def _progress(self, session: UploadSession, *, send: bool = True) -> None:
        if session.total == len(session.data):
            self.double.finish_upload(session)
        if not send:
            return None
        if session.result is not None:
            return self._send(200, session.result)
        headers = {"Range": f"bytes=0-{len(session.data) - 1}"} if session.data else {}
        return self._send(308, None, headers)


def _basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    from urllib.parse import unquote

    return unquote(user), unquote(password)


def serve(double: DriveDouble) -> tuple[ThreadingHTTPServer, threading.Thread]:
    handler = type("DriveDoubleHandler", (_Handler,), {"double": double})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    double.base_url = f"http://127.0.0.1:{server.server_port}/"
    thread = threading.Thread(target=server.serve_forever, name="gdrive-double", daemon=True)
    thread.start()
    return server, thread


@pytest.fixture(scope="session")
def gdrive_double():
    """The running double (shared by the session; use ``gdrive`` in tests)."""
    double = DriveDouble()
    server, thread = serve(double)
    yield double
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def gdrive(gdrive_double, settings, monkeypatch):
    """A fresh double with the portal's Google settings pointed at it."""
    gdrive_double.reset()
    base = gdrive_double.base_url
    settings.GOOGLE_OAUTH_CLIENT_ID = gdrive_double.client_id
    settings.GOOGLE_OAUTH_CLIENT_SECRET = gdrive_double.client_secret
    settings.GOOGLE_OAUTH_AUTH_URI = base + "o/oauth2/auth"
    settings.GOOGLE_OAUTH_TOKEN_URI = base + "token"
    settings.GOOGLE_OAUTH_REVOKE_URI = base + "revoke"
    settings.GOOGLE_DRIVE_API_BASE = base
    # oauthlib refuses plain-HTTP token endpoints unless told otherwise; the double is loopback.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    return gdrive_double
