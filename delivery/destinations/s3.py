"""AWS S3 or any S3-compatible store (MinIO, Ceph, Wasabi, R2, ...).

Large files go up as a multipart upload, several parts at once; S3 makes the
object visible only when the upload is completed, so a half-sent file never
appears under its final key. A failed upload is aborted so its parts stop
costing storage, and parts left by a killed worker are aborted before the
next attempt.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
from typing import Any
from urllib.parse import urlsplit

from django import forms

from portal import egress
from portal.egress_http import guard_boto_client

from .base import (
    HASH_CHUNK,
    Destination,
    DestinationForm,
    LocalFile,
    ProgressCallback,
    PublicURLField,
    ResumePoint,
    TransferError,
    refused_error,
)

MB = 1024 * 1024
# Chosen by measurement with bench/delivery.py (see bench/README.md).
MULTIPART_THRESHOLD = 16 * MB
MULTIPART_CHUNKSIZE = 16 * MB
MAX_CONCURRENCY = 4

STORAGE_CLASSES = [
    ("", "Bucket default"),
    ("STANDARD", "Standard"),
    ("INTELLIGENT_TIERING", "Intelligent-Tiering"),
    ("STANDARD_IA", "Standard-IA"),
    ("ONEZONE_IA", "One Zone-IA"),
    ("GLACIER_IR", "Glacier Instant Retrieval"),
    ("GLACIER", "Glacier Flexible Retrieval"),
    ("DEEP_ARCHIVE", "Glacier Deep Archive"),
    ("REDUCED_REDUNDANCY", "Reduced redundancy"),
]
SSE_CHOICES = [
    ("", "None (bucket default)"),
    ("AES256", "AES256 (SSE-S3)"),
    ("aws:kms", "aws:kms (SSE-KMS)"),
]
ERROR_CODE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9.]{1,63}$")
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z0-9]+){1,4}$")
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
BAD_KEY_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidClientTokenId",
    "InvalidToken",
}
REGION_CODES = {
    "PermanentRedirect",
    "AuthorizationHeaderMalformed",
    "IllegalLocationConstraintException",
}
TRANSIENT_CODES = {
    "RequestTimeout",
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "RequestTimeTooSkewed",
}


class S3Form(DestinationForm):
    secret_fields = ("secret_access_key",)

    bucket = forms.CharField(max_length=63)
    region = forms.CharField(
        required=False, initial="us-east-1", help_text="e.g. eu-west-1; needed for AWS."
    )
    access_key_id = forms.CharField(max_length=128)
    secret_access_key = forms.CharField(max_length=256)
    endpoint_url = PublicURLField(
        required=False,
        assume_scheme="https",
        help_text="Only for S3-compatible stores, e.g. https://minio.example.com:9000.",
    )
    storage_class = forms.ChoiceField(choices=STORAGE_CLASSES, required=False)
    sse = forms.ChoiceField(choices=SSE_CHOICES, required=False, label="Server-side encryption")

    def clean_bucket(self) -> str:
        bucket = self.cleaned_data["bucket"].strip()
        if not BUCKET_RE.match(bucket):
            raise forms.ValidationError(
                "Give the bucket name only (3-63 lowercase letters, digits, dots, hyphens), "
                "not an s3:// or https:// address."
            )
        return bucket

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        assert data is not None  # Form.clean() returns cleaned_data; the stubs allow None
        if not data.get("endpoint_url") and not (data.get("region") or "").strip():
            self.add_error("region", "Give the bucket's AWS region, e.g. eu-west-1.")
        old_key_id = (self.initial or {}).get("access_key_id")
        new_key_id = data.get("access_key_id")
        if (
            old_key_id
            and new_key_id
            and new_key_id != old_key_id
            and not data.get("secret_access_key")
        ):
            self.add_error("secret_access_key", "A new access key id needs its secret access key.")
        return data


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
        import boto3
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
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.config.get("secret_access_key") or "",
            config=config,
        )
        return guard_boto_client(client)

    @property
    def client(self) -> Any:
        if self._client is None:
            self.open()
        return self._client

    def _transfer_config(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_chunksize,
            max_concurrency=self.max_concurrency,
            use_threads=True,
            preferred_transfer_client="classic",
        )

    def _part_size(self, size: int) -> int:
        """The part size s3transfer will use for a file of ``size`` bytes."""
        from s3transfer.utils import ChunksizeAdjuster

        return ChunksizeAdjuster().adjust_chunksize(self.multipart_chunksize, size)

    # -- the interface ------------------------------------------------------------
    def check(self) -> str:
        key = self.full_path(f".portal-probe-{secrets.token_hex(4)}.txt")
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
        self._abort_incomplete(key)  # parts left behind by a worker that was killed
        try:
            try:
                self._upload(local, key, progress)
            except Exception as exc:
                if not (self._send_checksum and _refuses_checksums(exc)):
                    raise
                self._abort_incomplete(key)
                with self._lock:
                    self._send_checksum = False
                    self._client = self._make_client(checksums=False)
                self._upload(local, key, progress)
        except BaseException as exc:
            self._abort_incomplete(key)
            if _is_boto_error(exc):
                raise self._error(exc, key) from None
            raise

    def _upload(self, local: LocalFile, key: str, progress: ProgressCallback) -> None:
        self.client.upload_file(
            str(local.path),
            self.bucket,
            key,
            ExtraArgs=self._put_args(),
            Callback=progress,
            Config=self._transfer_config(),
        )

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

    # -- errors -----------------------------------------------------------------------
    def _error(self, exc: BaseException, key: str) -> TransferError:
        from botocore.exceptions import (
            ClientError,
            ConnectionError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        where = f"s3://{self.bucket}/{key}"
        endpoint = self.endpoint_url or f"S3 in {self.region}"
        refused = refused_error(exc)
        if refused is not None:
            return refused
        client_error = _find(exc, ClientError)
        if client_error is not None:
            code = _code(client_error)
            if not ERROR_CODE_RE.match(code):
                code = ""  # not an S3 error code: the body is not ours to show
            status = client_error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in BAD_KEY_CODES:
                return TransferError(
                    f"S3 rejected the access key {self.access_key_id!r} for bucket {self.bucket!r} "
                    f"({code}): check the access key id and the secret access key.",
                    permanent=True,
                )
            if code == "NoSuchBucket":
                return TransferError(
                    f"Bucket {self.bucket!r} does not exist on {endpoint}: create it or fix the name.",
                    permanent=True,
                )
            if code in ("AccessDenied", "AllAccessDisabled") or status == 403:
                return TransferError(
                    f"S3 refused access to {where} for access key {self.access_key_id!r} ({code}): "
                    "check the access key id and secret access key, and that the key may "
                    "s3:PutObject, s3:GetObject, s3:DeleteObject, s3:ListBucketMultipartUploads "
                    "and s3:AbortMultipartUpload on this bucket.",
                    permanent=True,
                )
            if code in REGION_CODES or status == 301:
                actual = client_error.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
                hint = actual.get("x-amz-bucket-region")
                hint = hint if hint and REGION_RE.match(hint) else None
                return TransferError(
                    f"Bucket {self.bucket!r} is not in region {self.region!r}"
                    + (f"; set the region to {hint!r}." if hint else ": fix the region."),
                    permanent=True,
                )
            if code.startswith("KMS") or code in (
                "InvalidStorageClass",
                "InvalidEncryptionAlgorithmError",
            ):
                return TransferError(
                    f"S3 refused the storage settings for {where} ({code}): check the storage "
                    "class and server-side encryption.",
                    permanent=True,
                )
            transient = status >= 500 or status in (408, 429) or code in TRANSIENT_CODES
            return TransferError(
                f"S3 answered {code or status} for {where} on {endpoint}", permanent=not transient
            )
        if _find(exc, EndpointConnectionError) or _find(exc, ConnectionError):
            return TransferError(f"Cannot reach {endpoint} (connection failed)")
        if _find(exc, ReadTimeoutError):
            return TransferError(f"{endpoint} stopped answering while sending {where}")
        return TransferError(f"Transfer of {where} failed: {type(exc).__name__}")


def _find(exc: BaseException | None, kind: type[BaseException]) -> Any:
    """``exc`` or the first of its causes that is a ``kind`` (boto3 wraps
    ClientError into S3UploadFailedError)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, kind):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _code(exc: BaseException) -> str:
    from botocore.exceptions import ClientError

    found = _find(exc, ClientError)
    return str(found.response.get("Error", {}).get("Code", "")) if found is not None else ""


def _refuses_checksums(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError

    found = _find(exc, ClientError)
    if found is None:
        return False
    error = found.response.get("Error", {})
    return (
        error.get("Code") == "NotImplemented" or "checksum" in str(error.get("Message", "")).lower()
    )


def _is_boto_error(exc: BaseException) -> bool:
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(exc, (BotoCoreError, ClientError, Boto3Error))


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
