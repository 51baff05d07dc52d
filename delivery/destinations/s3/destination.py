"""AWS S3 or any S3-compatible store (MinIO, Ceph, Wasabi, R2, ...).

Large files go up as a multipart upload, a few parts at once; S3 makes the
object visible only when the upload is completed, so a half-sent file never
appears under its final key. The UploadId is saved with the file's row as
soon as the upload is created (ResumePoint), so the next run, after a lost
connection or a killed worker, lists the parts S3 has, checks them and sends
only the missing ones. A permanent error, a delivery that gives up or one
sent again from scratch aborts the upload so its parts stop costing storage;
parts a worker left without saving their UploadId are aborted before a new
upload starts.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from typing import Any
from urllib.parse import urlsplit

from portal import egress
from portal.egress_http import guard_boto_client

from ..base import (
    HASH_CHUNK,
    Destination,
    LocalFile,
    ProgressCallback,
    ResumePoint,
    TransferError,
    probe_name,
    refused_error,
)
from ..clients import boto3_client, client_key, shared_client
from ..parts import Part, concurrency_for, send_parts, split
from .errors import _code, _is_boto_error, _refuses_checksums, s3_error
from .form import S3Form

MB = 1024 * 1024
MULTIPART_THRESHOLD = 16 * MB
# 8 MiB parts, two at a time: a killed worker leaves at most 16 MiB of
# unacknowledged parts to send again (parts.IN_FLIGHT); see bench/README.md.
MULTIPART_CHUNKSIZE = 8 * MB
MAX_CONCURRENCY = 4


class S3Destination(Destination):
    kind = "s3"
    webhook_name = "awss3"
    label = "Save on AWS S3 (or S3-compatible)"
    form_class = S3Form

    multipart_threshold = MULTIPART_THRESHOLD
    multipart_chunksize = MULTIPART_CHUNKSIZE
    max_concurrency = MAX_CONCURRENCY

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        self.bucket: str = self.config["bucket"]
        self.endpoint_url: str | None = self.config.get("endpoint_url") or None
        self.region: str = self.config.get("region") or "us-east-1"
        self.access_key_id: str = self.config.get("access_key_id") or ""
        self._client: Any = None
        # Some S3-compatible stores refuse the checksum headers; we then fall
        # back to ETag checks (once per Destination).
        self._send_checksum = True
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    __str__ = __repr__

    def describe(self) -> str:
        where = f"s3://{self.bucket}/{self.root}".rstrip("/")
        return f"{where} at {self.endpoint_url}" if self.endpoint_url else where

    def webhook_destination(self) -> dict[str, str]:
        host = urlsplit(self.endpoint_url).netloc if self.endpoint_url else ""
        return {"host": host or f"s3.{self.region}.amazonaws.com", "account": self.bucket}

    def final_path(self, remote_path: str) -> str:
        return f"s3://{self.bucket}/{self.full_path(remote_path)}"

    # -- connection ---------------------------------------------------------------
    def open(self) -> None:
        # Refused before botocore's retries start; every connection is still
        # checked by the guard when it is made.
        if self.endpoint_url:
            try:
                egress.check_host(urlsplit(self.endpoint_url).hostname or "")
            except (egress.OutboundRefused, ValueError) as exc:
                raise refused_error(exc) or TransferError(
                    f"The endpoint URL of {self.describe()} is not valid: edit the destination.",
                    permanent=True,
                ) from None
        self._client = self._make_client(checksums=True)

    def close(self) -> None:
        self._client = None

    def _make_client(self, *, checksums: bool) -> Any:
        """The worker's client for these settings (clients.py: made once per
        process and reused by later deliveries)."""
        secret = self.config.get("secret_access_key") or ""
        key = client_key(
            "s3", endpoint=self.endpoint_url, region=self.region, access_key_id=self.access_key_id,
            secret=secret, checksums=checksums, pool=self.max_concurrency,
        )  # fmt: skip
        return shared_client(key, lambda: self._new_client(checksums=checksums, secret=secret))

    def _new_client(self, *, checksums: bool, secret: str) -> Any:
        from botocore.config import Config

        config = Config(
            region_name=self.region,
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=10,
            read_timeout=120,
            max_pool_connections=self.max_concurrency + 2,
            s3={"addressing_style": "path" if self.endpoint_url else "auto"},
            request_checksum_calculation="when_supported" if checksums else "when_required",
            response_checksum_validation="when_supported" if checksums else "when_required",
        )
        client = boto3_client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=secret,
            config=config,
        )
        return guard_boto_client(client)

    @property
    def client(self) -> Any:
        if self._client is None:
            self.open()
        return self._client

    def _part_size(self, size: int) -> int:
        """The part size s3transfer will use for a file of ``size`` bytes."""
        from s3transfer.utils import ChunksizeAdjuster

        return ChunksizeAdjuster().adjust_chunksize(self.multipart_chunksize, size)

    # -- the interface ------------------------------------------------------------
    def check(self) -> str:
        key = self.full_path(probe_name())
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=b"probe\n", **self._put_args())
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            raise self._error(exc, key) from None
        return f"Wrote and removed a probe object in {self.describe()}"

    def upload(
        self,
        local: LocalFile,
        remote_path: str,
        progress: ProgressCallback,
        resume: ResumePoint | None = None,
    ) -> None:
        key = self.full_path(remote_path)
        resume = resume if resume is not None else ResumePoint()
        try:
            try:
                self._upload(local, key, progress, resume)
            except Exception as exc:
                if not (self._send_checksum and _refuses_checksums(exc)):
                    raise
                self._discard(key, resume)
                with self._lock:
                    self._send_checksum = False
                    self._client = self._make_client(checksums=False)
                self._upload(local, key, progress, resume)
        except Exception as exc:
            if not _is_boto_error(exc):
                raise
            error = self._error(exc, key)
            if error.permanent:
                self._discard(key, resume)
            # A transient error (or a lost lease, which is not caught here)
            # keeps the multipart upload for the next run to continue.
            raise error from None

    def _upload(
        self, local: LocalFile, key: str, progress: ProgressCallback, resume: ResumePoint
    ) -> None:
        if local.size < self.multipart_threshold:
            if resume.state:
                self._discard(key, resume)
            with open(local.path, "rb") as fh:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=fh, **self._put_args())
            progress(local.size)
            return
        found = self._resumed(local, key, resume)
        if found is None:
            # Parts a worker killed before it could save its UploadId left.
            self._abort_incomplete(key)
            part_size = self._part_size(local.size)
            created = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key, **self._put_args()
            )
            upload_id = created["UploadId"]
            done: dict[int, dict[str, Any]] = {}
            resume.save({"upload_id": upload_id, "key": key, "part_size": part_size,
                         "size": local.size, "checksum": self._send_checksum})  # fmt: skip
        else:
            upload_id, part_size, done = found
        parts = split(local.size, part_size)
        todo = [part for part in parts if part.number not in done]
        if done:
            resume.note(
                f"continuing the multipart upload: {len(done)} of {len(parts)} parts are "
                f"already in the bucket, sending {len(todo)}"
            )

        def send(part: Part) -> dict[str, str]:
            extra = {"ChecksumAlgorithm": "SHA256"} if self._send_checksum else {}
            sent = self.client.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=part.number,
                Body=part.read(local.path), **extra,
            )  # fmt: skip
            return _completed_part(part.number, sent)

        done.update(
            send_parts(todo, send, progress, concurrency_for(part_size, self.max_concurrency))
        )
        self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [done[number] for number in sorted(done)]},
        )

    def _resumed(
        self, local: LocalFile, key: str, resume: ResumePoint
    ) -> tuple[str, int, dict[int, dict[str, str]]] | None:
        """(UploadId, part size, parts already intact in the bucket) of the
        upload an earlier run saved, or None to start a new one."""
        state = resume.state
        if not state:
            return None
        same = (state.get("key"), state.get("size"), state.get("checksum")) == (
            key, local.size, self._send_checksum
        )  # fmt: skip
        if not (same and state.get("upload_id") and state.get("part_size")):
            self._discard(key, resume)
            return None
        upload_id, part_size = str(state["upload_id"]), int(state["part_size"])
        try:
            listed = self._list_parts(key, upload_id)
        except Exception as exc:
            if _code(exc) not in ("NoSuchUpload", "404"):
                raise
            resume.note("the unfinished multipart upload is gone from the bucket; starting again")
            resume.save({})
            return None
        expected = {part.number: part for part in split(local.size, part_size)}
        done = {}
        for item in listed:
            part = expected.get(int(item["PartNumber"]))
            if part is not None and int(item["Size"]) == part.size and self._intact(local, part, item):
                done[part.number] = _completed_part(part.number, item)
        return upload_id, part_size, done

    def _list_parts(self, key: str, upload_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        marker = 0
        while True:
            page = self.client.list_parts(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
            )
            items.extend(page.get("Parts", []))
            if not page.get("IsTruncated"):
                return items
            marker = int(page["NextPartNumberMarker"])

    def _intact(self, local: LocalFile, part: Part, item: dict[str, Any]) -> bool:
        """The part in the bucket holds these bytes, as far as S3 tells: its
        SHA-256 if it kept one, else its ETag (the MD5, unless SSE-KMS)."""
        data = part.read(local.path)
        if item.get("ChecksumSHA256"):
            return bool(item["ChecksumSHA256"] == _b64(hashlib.sha256(data).digest()))
        etag = str(item.get("ETag", "")).strip('"')
        if re.fullmatch(r"[0-9a-f]{32}", etag) and not str(self.config.get("sse") or "").startswith("aws:kms"):
            return etag == hashlib.md5(data).hexdigest()
        return True

    def discard(self, remote_path: str, state: Any) -> None:
        self._discard(self.full_path(remote_path), ResumePoint(state))

    def _discard(self, key: str, resume: ResumePoint) -> None:
        """Abort the saved multipart upload (and any other left for ``key``)."""
        upload_id = resume.state.get("upload_id")
        if upload_id:
            try:
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=resume.state.get("key") or key, UploadId=upload_id
                )
            except Exception:
                pass  # already gone, or the bucket is unreachable: nothing to keep
        self._abort_incomplete(key)
        if resume.state:
            resume.save({})

    def _put_args(self) -> dict[str, str]:
        args = {}
        if self._send_checksum:
            args["ChecksumAlgorithm"] = "SHA256"
        if self.config.get("storage_class"):
            args["StorageClass"] = self.config["storage_class"]
        if self.config.get("sse"):
            args["ServerSideEncryption"] = self.config["sse"]
        return args

    def verify(self, local: LocalFile, remote_path: str) -> bool:
        key = self.full_path(remote_path)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except Exception as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._error(exc, key) from None
        if head["ContentLength"] != local.size:
            return False
        etag = head.get("ETag", "").strip('"')
        parts = int(etag.rsplit("-", 1)[1]) if re.fullmatch(r"[0-9a-f]{32}-\d+", etag) else 0
        checksum = head.get("ChecksumSHA256")
        if checksum:
            checksum = checksum.split("-", 1)[0]
            if not parts:
                return checksum == _b64(bytes.fromhex(local.sha256_hex()))
            digests = _part_digests(local, self._remote_part_size(key, local), "sha256")
            return checksum == _b64(hashlib.sha256(b"".join(digests)).digest())
        if head.get("ServerSideEncryption", "").startswith("aws:kms"):
            return True  # SSE-KMS ETags are not MD5s; the size is all S3 gives us
        if not parts:
            return etag == local.md5
        digests = _part_digests(local, self._remote_part_size(key, local), "md5")
        return etag == f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"

    def _remote_part_size(self, key: str, local: LocalFile) -> int:
        """The size of part 1 as stored (an earlier run may have used another
        part size); our own part size if the store cannot tell."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key, PartNumber=1)
            return int(head["ContentLength"])
        except Exception:
            return self._part_size(local.size)

    def _abort_incomplete(self, key: str) -> None:
        """Best effort: a failure here must not hide the error that got us here."""
        try:
            listing = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
            for upload in listing.get("Uploads", []):
                if upload["Key"] == key:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=key, UploadId=upload["UploadId"]
                    )
        except Exception:
            pass

    def _error(self, exc: BaseException, key: str) -> TransferError:
        return s3_error(exc, bucket=self.bucket, key=key, region=self.region,
                        endpoint_url=self.endpoint_url, access_key_id=self.access_key_id)  # fmt: skip


def _completed_part(number: int, answer: dict[str, Any]) -> dict[str, Any]:
    """A part as CompleteMultipartUpload wants it, from UploadPart's or ListParts' answer."""
    part = {"PartNumber": number, "ETag": answer["ETag"]}
    if answer.get("ChecksumSHA256"):
        part["ChecksumSHA256"] = answer["ChecksumSHA256"]
    return part


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _part_digests(local: LocalFile, part_size: int, algorithm: str) -> list[bytes]:
    digests = []
    with open(local.path, "rb") as fh:
        remaining = local.size
        while remaining > 0:
            digest = hashlib.new(algorithm)
            left = min(part_size, remaining)
            while left > 0:
                chunk = fh.read(min(HASH_CHUNK, left))
                if not chunk:
                    raise TransferError(f"{local.path} shrank while being checked", permanent=False)
                digest.update(chunk)
                left -= len(chunk)
            remaining -= part_size
            digests.append(digest.digest())
    return digests
