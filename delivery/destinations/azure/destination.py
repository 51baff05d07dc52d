"""Microsoft Azure Blob storage (or Azurite, or any endpoint speaking its API).

Large files are staged as blocks, several at once, and become visible only
when the block list is committed, so a half-sent blob never appears under its
final name. Block ids are deterministic (blocks.py): a later run, after
a lost connection or a killed worker, reads the uncommitted block list and
stages only the missing blocks. Staged blocks of a delivery that gives up are
dropped (Azure would discard them by itself after a week). The
file's MD5 is stored as the blob's Content-MD5 so verify() can compare it.
"""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import urlsplit

from portal import egress
from portal.egress_http import guarded_session

from ..base import (
    Destination,
    LocalFile,
    ProgressCallback,
    ResumePoint,
    TransferError,
    probe_name,
    refused_error,
)
from .blocks import discard_blocks, upload_blocks
from .form import (
    AUTH_SECRET,
    AzureBlobForm,
    connection_string_fields,
    connection_string_url,
    sas_parts,
)

MB = 1024 * 1024
# 4 MiB blocks, four at a time: a killed worker leaves at most 16 MiB of
# unacknowledged blocks to send again (parts.IN_FLIGHT); see bench/README.md.
MAX_BLOCK_SIZE = 4 * MB
MAX_SINGLE_PUT_SIZE = 16 * MB  # bigger files go up as blocks a later run can continue
MAX_CONCURRENCY = 4

AUTH_ERROR_CODES = {
    "AuthenticationFailed",
    "AuthorizationFailure",
    "AuthorizationPermissionMismatch",
    "AuthorizationResourceTypeMismatch",
    "AuthorizationServiceMismatch",
    "AuthorizationProtocolMismatch",
    "AuthorizationSourceIPMismatch",
    "InvalidAuthenticationInfo",
    "NoAuthenticationInformation",
}


class AzureBlobDestination(Destination):
    kind = "azure"
    webhook_name = "azure"
    label = "Save on Microsoft Azure Blob"
    form_class = AzureBlobForm

    max_block_size = MAX_BLOCK_SIZE
    max_single_put_size = MAX_SINGLE_PUT_SIZE
    max_concurrency = MAX_CONCURRENCY
    retry_total = 3

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        self.auth = self.config.get("auth") or next(
            (a for a, secret in AUTH_SECRET.items() if self.config.get(secret)), "key"
        )
        self.container_name: str = self.config.get("container") or ""
        self.account_name: str = self.config.get("account_name") or ""
        if self.auth == "connection_string":
            fields = connection_string_fields(self.config.get("connection_string") or "")
            self.account_name = fields.get("AccountName", self.account_name)
        elif self.auth == "sas":
            account, container, _base = sas_parts(self.config.get("sas_url") or "")
            self.account_name = account or self.account_name
            self.container_name = container or self.container_name
        self._container: Any = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    __str__ = __repr__

    def describe(self) -> str:
        return f"azure://{self.account_name}/{self.container_name}/{self.root}".rstrip("/")

    def webhook_destination(self) -> dict[str, str]:
        return {"host": f"{self.account_name}.blob.core.windows.net", "account": self.account_name}

    def final_path(self, remote_path: str) -> str:
        return f"azure://{self.account_name}/{self.container_name}/{self.full_path(remote_path)}"

    # -- connection -------------------------------------------------------------------
    def open(self) -> None:
        from azure.core.pipeline.transport import RequestsTransport
        from azure.storage.blob import BlobServiceClient, ContainerClient, ExponentialRetry

        options: dict[str, Any] = {
            # The SDK's default waits 15 s, 18 s, 24 s between tries; the engine
            # has its own backoff, so fail fast here.
            "retry_policy": ExponentialRetry(
                initial_backoff=1, increment_base=2, retry_total=self.retry_total
            ),
            "max_block_size": self.max_block_size,
            "max_single_put_size": self.max_single_put_size,
            "connection_timeout": 10,
            "read_timeout": 120,
            # Every connection through the egress guard; no redirects (the
            # SDK's own policy would follow them to any host).
            "transport": RequestsTransport(session=guarded_session(), session_owner=False),
            "permit_redirects": False,
        }
        self._refuse_early()
        try:
            if self.auth == "sas":
                sas_url = self.config["sas_url"]
                _account, container, base = sas_parts(sas_url)
                if container:
                    self._container = ContainerClient.from_container_url(sas_url, **options)
                else:
                    token = urlsplit(sas_url).query
                    service = BlobServiceClient(account_url=base, credential=token, **options)
                    self._container = service.get_container_client(self.container_name)
                return
            if self.auth == "connection_string":
                service = BlobServiceClient.from_connection_string(
                    self.config["connection_string"], **options
                )
            else:
                account_url = (
                    self.config.get("endpoint_url")
                    or f"https://{self.account_name}.blob.core.windows.net"
                )
                credential = {
                    "account_name": self.account_name,
                    "account_key": self.config["account_key"],
                }
                service = BlobServiceClient(
                    account_url=account_url, credential=credential, **options
                )
        except (KeyError, ValueError) as exc:
            what = exc.args[0] if isinstance(exc, KeyError) else "a malformed value"
            raise TransferError(
                f"Azure settings for {self.describe()} are incomplete ({what}): edit the destination.",
                permanent=True,
            ) from None
        self._container = service.get_container_client(self.container_name)

    def _refuse_early(self) -> None:
        """Refuse a non-public endpoint before the SDK's retries start; every
        connection is still checked by the guard when it is made."""
        if self.auth == "sas":
            url = self.config.get("sas_url") or ""
        elif self.auth == "connection_string":
            url = connection_string_url(self.config.get("connection_string") or "")
        else:
            url = self.config.get("endpoint_url") or ""
        try:
            egress.check_host(urlsplit(url).hostname or "")
        except egress.OutboundRefused as exc:
            raise TransferError(exc.message, permanent=True) from None
        except ValueError:
            raise TransferError(
                f"The Azure endpoint of {self.describe()} is not a valid URL: edit the destination.",
                permanent=True,
            ) from None

    def close(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:
                pass
            self._container = None

    @property
    def container(self) -> Any:
        if self._container is None:
            self.open()
        return self._container

    # -- the interface ----------------------------------------------------------------
    def check(self) -> str:
        blob = self.full_path(probe_name())
        try:
            self.container.upload_blob(blob, b"probe\n", overwrite=True)
            self.container.delete_blob(blob)
        except Exception as exc:
            raise self._error(exc, blob) from None
        return f"Wrote and removed a probe blob in {self.describe()}"

    def upload(
        self,
        local: LocalFile,
        remote_path: str,
        progress: ProgressCallback,
        resume: ResumePoint | None = None,
    ) -> None:
        from azure.storage.blob import ContentSettings

        name = self.full_path(remote_path)
        lock = threading.Lock()
        reported = 0

        def hook(current: int, _total: int | None) -> None:
            nonlocal reported
            with lock:
                delta, reported = current - reported, max(current, reported)
            if delta > 0:
                progress(delta)

        resume = resume if resume is not None else ResumePoint()
        try:
            if local.size <= self.max_single_put_size:
                with open(local.path, "rb") as fh:
                    self.container.upload_blob(
                        name,
                        fh,
                        length=local.size,
                        overwrite=True,
                        content_settings=ContentSettings(content_md5=bytearray(bytes.fromhex(local.md5))),
                        progress_hook=hook,
                    )
            else:
                upload_blocks(
                    self.container.get_blob_client(name),
                    local,
                    block_size=self.max_block_size,
                    most_at_once=self.max_concurrency,
                    progress=progress,
                    resume=resume,
                )
        except Exception as exc:
            if _is_azure_error(exc) or egress.refused_in(exc):
                raise self._error(exc, name) from None
            raise

    def discard(self, remote_path: str, state: Any) -> None:
        blob = self.container.get_blob_client(self.full_path(remote_path))
        try:
            discard_blocks(blob)
        except Exception as exc:
            if _is_azure_error(exc) or egress.refused_in(exc):
                raise self._error(exc, blob.blob_name) from None
            raise

    def verify(self, local: LocalFile, remote_path: str) -> bool:
        name = self.full_path(remote_path)
        try:
            props = self.container.get_blob_client(name).get_blob_properties()
        except Exception as exc:
            if _error_code(exc) == "BlobNotFound":
                return False
            raise self._error(exc, name) from None
        if props.size != local.size:
            return False
        stored = props.content_settings.content_md5
        # A blob without Content-MD5 was not written by us: send it again.
        return bool(stored) and bytes(stored) == bytes.fromhex(local.md5)

    # -- errors -----------------------------------------------------------------------
    def _error(self, exc: BaseException, name: str) -> TransferError:
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
        )

        where = f"azure://{self.account_name}/{self.container_name}/{name}"
        refused = refused_error(exc)
        if refused is not None:
            return refused
        code = _error_code(exc)
        status = getattr(exc, "status_code", None) or 0
        how = {"key": "account key", "connection_string": "connection string", "sas": "SAS URL"}[
            self.auth
        ]
        if isinstance(exc, ClientAuthenticationError) or code in AUTH_ERROR_CODES:
            return TransferError(
                f"Azure rejected the {how} for account {self.account_name!r}, container "
                f"{self.container_name!r} ({code or status}): check the {how} "
                + (
                    "(is it expired? does it allow write, create and delete?)."
                    if self.auth == "sas"
                    else "."
                ),
                permanent=True,
            )
        if code == "ContainerNotFound":
            return TransferError(
                f"Container {self.container_name!r} does not exist in account {self.account_name!r}: "
                "create it or fix the name.",
                permanent=True,
            )
        if isinstance(exc, ServiceRequestError):
            return TransferError(
                f"Cannot reach Azure Blob storage for account {self.account_name!r}"
            )
        if isinstance(exc, ServiceResponseError):
            return TransferError(
                f"Azure Blob storage stopped answering while sending {where}"
            )
        if isinstance(exc, HttpResponseError):
            transient = status >= 500 or status in (408, 429)
            return TransferError(
                f"Azure answered {code or status} for {where}", permanent=not transient
            )
        return TransferError(f"Transfer of {where} failed: {type(exc).__name__}")


def _is_azure_error(exc: BaseException) -> bool:
    from azure.core.exceptions import AzureError

    return isinstance(exc, AzureError)


def _error_code(exc: BaseException) -> str:
    code = getattr(exc, "error_code", None) or ""
    code = str(getattr(code, "value", code))
    # An Azure error code, or nothing: a body's other words are not ours to show.
    return code if re.fullmatch(r"[A-Za-z][A-Za-z0-9]{1,63}", code) else ""
