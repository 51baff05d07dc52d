"""The settings of a Google Drive destination: the folder (a path, an ID or
a folder link). The account is connected by the OAuth flow (connect.py), not
typed in."""

from __future__ import annotations

import re
from typing import Any

from django import forms

from ..base import DestinationForm

_LINKED_ID = re.compile(r"/folders/([A-Za-z0-9_-]{10,})")
_LOOKS_LIKE_ID = re.compile(r"^(?=.*\d)(?=.*[a-z])(?=.*[A-Z])[A-Za-z0-9_-]{25,}$")


def parse_folder(value: str) -> tuple[str | None, list[str]]:
    """``(folder_id, [])`` for an ID or a Drive folder link, ``(None, segments)``
    for a path. A leading ``/`` always means a path."""
    value = value.strip()
    if linked := _LINKED_ID.search(value):
        return linked.group(1), []
    if _LOOKS_LIKE_ID.match(value):
        return value, []
    return None, [part.strip() for part in value.split("/") if part.strip()]




class GoogleDriveForm(DestinationForm):
    secret_fields = ("refresh_token",)

    folder = forms.CharField(
        required=False,
        help_text=(
            "A folder path in My Drive such as Recordings/Portal (created if missing), "
            "or the ID or link of a folder the portal created. Blank: My Drive."
        ),
    )
    # Both set by the "Connect Google account" flow, not typed in: the email is
    # shown read-only (from ``initial``) and a blank token keeps the stored one.
    account_email = forms.EmailField(required=False, disabled=True, label="Google account")
    refresh_token = forms.CharField(required=False, help_text="Set by connecting a Google account.")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["refresh_token"].required = False

    def clean_folder(self) -> str:
        value = (self.cleaned_data.get("folder") or "").strip()
        folder_id, segments = parse_folder(value)
        if folder_id:
            return folder_id
        if any(part in (".", "..") for part in segments):
            raise forms.ValidationError("Give a folder path without '.' or '..'.")
        return "/".join(segments) if not value.startswith("/") else "/" + "/".join(segments)


