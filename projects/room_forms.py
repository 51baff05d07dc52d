from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from .actions.rooms import NAME_MAX, OWNER_REF_MAX
from .models import Room
from .rooms import validate_room_settings

# Field of the settings validator -> field of this form.
SETTING_FIELDS = {
    "settings.mode": "mode",
    "settings.auto_recording": "auto_recording",
    "settings.chat_only": "chat_only",
    "settings.live_recording.auto_recording": "live_auto_recording",
    "settings.live_recording.url": "live_url",
}


class RoomForm(forms.Form):
    """The Rooms page's form; validated by the same rules as the Video API."""

    name = forms.CharField(max_length=NAME_MAX)
    owner_ref = forms.CharField(
        max_length=OWNER_REF_MAX,
        required=False,
        label="Owner reference",
        help_text="Your own reference for the room, e.g. a customer or team id.",
    )
    mode = forms.ChoiceField(choices=Room.Mode.choices, initial=Room.Mode.GROUP)
    auto_recording = forms.BooleanField(required=False, label="Record every session automatically")
    chat_only = forms.BooleanField(required=False, label="Chat only (no audio or video)")
    live_auto_recording = forms.BooleanField(
        required=False, label="Start live recording automatically"
    )
    live_url = forms.CharField(
        max_length=1000,
        required=False,
        label="Live recording URL",
        help_text="The http(s) page the live recording captures; needed for automatic live recording.",
    )

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        data["settings"] = {
            "mode": data["mode"],
            "auto_recording": data["auto_recording"],
            "chat_only": data["chat_only"],
            "live_recording": {
                "auto_recording": data["live_auto_recording"],
                "url": data["live_url"].strip(),
            },
        }
        try:
            data["settings"] = validate_room_settings(data["settings"])
        except ValidationError as exc:
            for key, messages in exc.message_dict.items():
                field = SETTING_FIELDS.get(key)
                for message in messages:
                    self.add_error(field, message if field else f"{key} {message}")
        return data
