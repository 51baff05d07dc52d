"""The login settings SFTP and SCP share: host, port, user, and a password
or a private key (pasted, or generated here on "Generate a new key pair")."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.safestring import mark_safe

from ..base import DestinationForm
from .connection import InvalidPrivateKey, load_private_key
from .keypairs import generate_keypair


class SecretTextarea(forms.Textarea):
    """A textarea that never renders a value back (write-only key field)."""

    def format_value(self, value: Any) -> None:
        return None


class SSHLoginForm(DestinationForm):
    """Connection settings shared by SFTP and SCP."""

    secret_fields = ("password", "private_key", "passphrase")
    web_only_fields = ("generate_key",)

    host = forms.CharField(help_text="Host name or IP address of your server.")
    port = forms.IntegerField(initial=22, min_value=1, max_value=65535)
    username = forms.CharField()
    password = forms.CharField(required=False, help_text="Password of the user, or give a key.")
    private_key = forms.CharField(
        required=False,
        help_text="Private key (OpenSSH or PEM text) whose public key is in the user's authorized_keys.",
    )
    passphrase = forms.CharField(required=False, help_text="Passphrase of the private key, if any.")
    generate_key = forms.BooleanField(
        required=False,
        label="Generate a new key pair (ed25519) instead of a pasted key",
        help_text=mark_safe(  # a constant: nothing from outside
            "The private key is stored encrypted; the public key is shown after saving, to "
            "paste into the user's <code>~/.ssh/authorized_keys</code>."
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["private_key"].widget = SecretTextarea(attrs={"rows": 6, "autocomplete": "off"})
        self.fields["root"].help_text = (
            "Folder under which <room_id>/<conf_num>/ folders are created; "
            "absolute (/srv/recordings) or relative to the user's home."
        )

    def clean_host(self) -> str:
        host = self.cleaned_data["host"].strip()
        self.check_public_host("host", host)
        return host

    def clean_username(self) -> str:
        return self.cleaned_data["username"].strip()

    def clean_root(self) -> str:
        root = (self.cleaned_data.get("root") or "").strip()
        if root in ("", "/"):
            return root
        return ("/" if root.startswith("/") else "") + root.strip("/")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        assert data is not None  # Form.clean() returns cleaned_data; the stubs allow None
        if data.get("generate_key") and not data.get("private_key"):
            comment = f"recording-portal-{self.app_id}" if self.app_id else "recording-portal"
            data["private_key"], public = generate_keypair(comment)
            data["passphrase"], data["public_key"] = "", public
        has_password = bool(data.get("password")) or "password" in self.stored_secrets
        has_key = bool(data.get("private_key")) or "private_key" in self.stored_secrets
        if not (has_password or has_key):
            raise forms.ValidationError("Give the user's password or a private key.")
        if data.get("private_key"):
            try:
                load_private_key(data["private_key"], data.get("passphrase") or None)
            except InvalidPrivateKey as exc:
                self.add_error("private_key", str(exc))
        return data


