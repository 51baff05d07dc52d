"""What the S3 destination says when S3 (or the way to it) fails: one
TransferError in the portal's words, permanent or worth a retry."""

from __future__ import annotations

import re
from typing import Any

from ..base import TransferError, refused_error

ERROR_CODE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9.]{1,63}$")
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z0-9]+){1,4}$")
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


def s3_error(
    exc: BaseException, *, bucket: str, key: str, region: str, endpoint_url: str | None,
    access_key_id: str,
) -> TransferError:
    """A TransferError saying what to fix, in the portal's words (an S3 error
    code at most, never a body)."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    where = f"s3://{bucket}/{key}"
    endpoint = endpoint_url or f"S3 in {region}"
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
                f"S3 rejected the access key {access_key_id!r} for bucket {bucket!r} "
                f"({code}): check the access key id and the secret access key.",
                permanent=True,
            )
        if code == "NoSuchBucket":
            return TransferError(
                f"Bucket {bucket!r} does not exist on {endpoint}: create it or fix the name.",
                permanent=True,
            )
        if code in ("AccessDenied", "AllAccessDisabled") or status == 403:
            return TransferError(
                f"S3 refused access to {where} for access key {access_key_id!r} ({code}): "
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
                f"Bucket {bucket!r} is not in region {region!r}"
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
