"""The settings of an Azure Blob destination: one of three ways to
authenticate (account key, connection string, SAS URL) and the container,
with the helpers that read where a connection string or SAS URL points."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django import forms

from portal import egress

from ..base import DestinationForm, PublicURLField

AUTH_CHOICES = [
    ("", "Pick from what is filled in"),
    ("key", "Account name and key"),
    ("connection_string", "Connection string"),
    ("sas", "SAS URL"),
]
AUTH_SECRET = {"key": "account_key", "connection_string": "connection_string", "sas": "sas_url"}

def connection_string_fields(value: str) -> dict[str, str]:
    pairs = (part.split("=", 1) for part in value.strip().strip(";").split(";") if "=" in part)
    return {name.strip(): val.strip() for name, val in pairs}


def sas_parts(sas_url: str) -> tuple[str, str | None, str]:
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
    fields = connection_string_fields(value)
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
            fields = connection_string_fields(data["connection_string"])
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
            elif self._check_egress("sas_url", data["sas_url"]) and sas_parts(data["sas_url"])[1]:
                data["container"] = data.get("container") or sas_parts(data["sas_url"])[1]
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

