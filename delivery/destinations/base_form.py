"""The forms of the destination kinds: the base every kind's form extends
(write-only secrets, the root folder, the egress rule for hosts and URLs)."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms

from portal import egress


class PublicURLField(forms.URLField):
    """A URL whose host the egress guard accepts. The guard's rule is checked
    first so that http://2130706433/ reads "is a loopback address", not
    "enter a valid URL"."""

    stored = ""  # the saved value, not checked again (see check_public_host)

    def run_validators(self, value: Any) -> None:
        if value not in self.empty_values and value != self.stored:
            egress.validate_public_url(value)
        super().run_validators(value)



class DestinationForm(forms.Form):
    """Base form of a destination kind. Secret fields are write-only: they are
    never rendered back, and a blank value keeps the stored one.

    ``stored_secrets`` is the set of secret field names that already have a
    value; those are optional on edit."""

    secret_fields: ClassVar[tuple[str, ...]] = ()
    # Fields offered on the pages only, never stored nor taken by the command
    # (e.g. "Generate a new key pair").
    web_only_fields: ClassVar[tuple[str, ...]] = ()

    root = forms.CharField(
        required=False,
        initial="",
        help_text="Folder (or key prefix) under which <room_id>/<conf_num>/ folders are created.",
    )

    def __init__(
        self,
        *args: Any,
        stored_secrets: frozenset[str] = frozenset(),
        app_id: str = "",
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.stored_secrets = stored_secrets
        self.app_id = app_id  # the project's, for names such as a generated key's comment
        for name, fld in self.fields.items():
            if isinstance(fld, PublicURLField):
                fld.stored = str((self.initial or {}).get(name) or "")
        for name in self.secret_fields:
            fld = self.fields[name]
            fld.widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
            if name in stored_secrets:
                fld.required = False
                fld.help_text = (fld.help_text + " " if fld.help_text else "") + "Leave blank to keep the stored value."

    def clean_root(self) -> str:
        root = (self.cleaned_data.get("root") or "").strip()
        return root.strip("/") if root not in ("", "/") else ""

    def check_public_host(self, name: str, host: str) -> None:
        """The egress rule for a host field. The saved value is not checked
        again, so a destination refused since it was saved can still be
        edited or switched off (delivering to it stays refused)."""
        if host != str((self.initial or {}).get(name) or ""):
            egress.validate_public_host(host)

    def split(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return (public config, secrets) from cleaned data. Blank secrets are
        left out so the caller keeps the stored value."""
        public, secrets = {}, {}
        for name, value in self.cleaned_data.items():
            if name in self.web_only_fields:
                continue
            if name in self.secret_fields:
                if value not in (None, ""):
                    secrets[name] = value
            else:
                public[name] = value
        return public, secrets
