"""Microsoft Azure Blob storage (or Azurite, or any endpoint speaking its API).

Large files are staged as blocks, several at once, and become visible only
when the block list is committed, so a half-sent blob never appears under its
final name (Azure discards uncommitted blocks by itself after a week). The
file's MD5 is stored as the blob's Content-MD5 so verify() can compare it.
"""

from __future__ import annotations

import re
import secrets
import threading
from typing import Any
from urllib.parse import urlsplit

from django import forms

from portal import egress
from portal.egress_http import guarded_session

from .base import (
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
MAX_BLOCK_SIZE = 16 * MB
MAX_SINGLE_PUT_SIZE = 16 * MB  # bigger files go up as parallel blocks
MAX_CONCURRENCY = 4

AUTH_CHOICES = [
    ("", "Pick from what is filled in"),
    ("key", "Account name and key"),
    ("connection_string", "Connection string"),
    ("sas", "SAS URL"),
]
AUTH_SECRET = {"key": "account_key", "connection_string": "connection_string", "sas": "sas_url"}
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


def _connection_string_fields(value: str) -> dict[str, str]:
    pairs = (part.split("=", 1) for part in value.strip().strip(";").split(";") if "=" in part)
    return {name.strip(): val.strip() for name, val in pairs}


def _sas_parts(sas_url: str) -> tuple[str, str | None, str]:
    """(account, container, account URL) named by a SAS URL; the account is
    the first path segment for emulator-style URLs (http://127.0.0.1:10000/devstoreaccount1)."""
    url = urlsplit(sas_url)
    segments = [s for s in url.path.split("/") if s]
    host = url.hostname or ""
    if host.count(".") >= 2 and not host.replace(".", "").isdigit():
        account, base = host.split(".", 1)[0], f"{url.scheme}://{url.netloc}"
    else:
        account = segments.pop(0) if segments else ""
        base = f"{url.scheme}://{url.netloc}/{account}"
    return account, (segments[0] if segments else None), base


def connection_string_url(value: str) -> str:
    """The blob endpoint a connection string points the SDK at."""
    fields = _connection_string_fields(value)
    if fields.get("BlobEndpoint"):
        return fields["BlobEndpoint"]
    if fields.get("UseDevelopmentStorage", "").lower() == "true":
        return "http://127.0.0.1:10000/devstoreaccount1"  # what the SDK uses for Azurite
    scheme = fields.get("DefaultEndpointsProtocol", "https")
    suffix = fields.get("EndpointSuffix", "core.windows.net")
    return f"{scheme}://{fields.get('AccountName', '')}.blob.{suffix}"


class AzureBlobForm(DestinationForm):
    secret_fields = ("account_key", "connection_string", "sas_url")

    auth = forms.ChoiceField(choices=AUTH_CHOICES, required=False, label="Authentication")
    account_name = forms.CharField(required=False, max_length=64)
    account_key = forms.CharField(required=False)
    connection_string = forms.CharField(required=False)
    sas_url = forms.CharField(
        required=False,
        label="SAS URL",
        help_text="A container (or account) SAS URL allowing read, write, create, delete and list.",
    )
    container = forms.CharField(required=False, max_length=63)
    endpoint_url = PublicURLField(
        required=False,
        assume_scheme="https",
        help_text="Only with an account key, for other clouds or Azurite, "
        "e.g. http://127.0.0.1:10000/devstoreaccount1.",
    )

    def _has(self, secret: str, data: dict[str, Any]) -> bool:
        return bool(data.get(secret)) or secret in self.stored_secrets

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        assert data is not None  # Form.clean() returns cleaned_data; the stubs allow None
        auth = data.get("auth") or ""
        if not auth:
            given = [a for a, secret in AUTH_SECRET.items() if data.get(secret)]
            stored = [a for a, secret in AUTH_SECRET.items() if secret in self.stored_secrets]
            candidates = given or stored
            if len(candidates) != 1:
                raise forms.ValidationError(
                    "Give exactly one way to authenticate: an account name with its key, "
                    "a connection string, or a SAS URL."
                )
            auth = data["auth"] = candidates[0]
        for other, secret in AUTH_SECRET.items():
            if other != auth and data.get(secret):
                self.add_error(
                    secret, f"Not used with the chosen authentication ({auth}); leave it blank."
                )
        secret = AUTH_SECRET[auth]
        if not self._has(secret, data):
            self.add_error(secret, "Required for the chosen authentication.")
        if auth == "key" and not data.get("account_name"):
            self.add_error("account_name", "Give the storage account name.")
        if auth == "connection_string" and data.get("connection_string"):
            fields = _connection_string_fields(data["connection_string"])
            if "AccountName" not in fields and "BlobEndpoint" not in fields:
                self.add_error(
                    "connection_string", "This does not look like an Azure connection string."
                )
            else:
                self._check_egress("connection_string", connection_string_url(data["connection_string"]))
        if auth == "sas" and data.get("sas_url"):
            url = urlsplit(data["sas_url"].strip())
            if url.scheme not in ("http", "https") or "sig=" not in url.query:
                self.add_error(
                    "sas_url",
                    "Give the full SAS URL: https://<account>.blob.core.windows.net/<container>?sv=...&sig=...",
                )
            elif self._check_egress("sas_url", data["sas_url"]) and _sas_parts(data["sas_url"])[1]:
                data["container"] = data.get("container") or _sas_parts(data["sas_url"])[1]
        if not data.get("container") and not (auth == "sas" and "sas_url" in self.stored_secrets):
            self.add_error("container", "Give the container name.")
        return data

    def _check_egress(self, field: str, url: str) -> bool:
        try:
            egress.validate_public_url(url)
        except forms.ValidationError as exc:
            self.add_error(field, exc)
            return False
        return True


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
            fields = _connection_string_fields(self.config.get("connection_string") or "")
            self.account_name = fields.get("AccountName", self.account_name)
        elif self.auth == "sas":
            account, container, _base = _sas_parts(self.config.get("sas_url") or "")
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
                _account, container, base = _sas_parts(sas_url)
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
        blob = self.full_path(f".portal-probe-{secrets.token_hex(4)}.txt")
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
        content_md5 = bytearray(bytes.fromhex(local.md5))
        lock = threading.Lock()
        reported = 0

        def hook(current: int, _total: int | None) -> None:
            nonlocal reported
            with lock:
                delta, reported = current - reported, max(current, reported)
            if delta > 0:
                progress(delta)

        try:
            with open(local.path, "rb") as fh:
                self.container.upload_blob(
                    name,
                    fh,
                    length=local.size,
                    overwrite=True,
                    max_concurrency=self.max_concurrency,
                    content_settings=ContentSettings(content_md5=content_md5),
                    progress_hook=hook,
                )
        except Exception as exc:
            if _is_azure_error(exc) or egress.refused_in(exc):
                raise self._error(exc, name) from None
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
