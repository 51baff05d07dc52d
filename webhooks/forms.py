"""The form of Settings → Webhook, also used by ``manage.py webhook configure``."""

from __future__ import annotations

from urllib.parse import urlsplit

from django import forms
from django.core.validators import URLValidator

from portal.egress import validate_public_url

from .models import WebhookEndpoint
from .outbox import SELECTABLE_EVENT_TYPES

EVENT_CHOICES = [(event, event) for event in SELECTABLE_EVENT_TYPES]


class HttpURLField(forms.URLField):
    """A URL field accepting only http(s); one validator, so one error."""

    default_validators = [URLValidator(schemes=["http", "https"])]
    # The endpoint's saved URL: not re-checked against the egress rule, so a
    # webhook refused since it was saved can still be switched off (sending
    # it stays refused at every attempt).
    stored = ""

    def run_validators(self, value):
        # The egress rule first: an address such as http://2130706433/ is also
        # not a URL Django accepts, and the rule is what the user must read.
        if value not in self.empty_values and value != self.stored:
            validate_public_url(value)
        super().run_validators(value)


class WebhookForm(forms.Form):
    """Webhook settings. The Basic password is write-only: it is never
    rendered back, blank keeps the stored one, "clear" removes it."""

    url = HttpURLField(
        label="Webhook URL",
        max_length=500,
        assume_scheme="https",
        error_messages={
            "invalid": "Enter a full http:// or https:// URL, e.g. https://example.com/hooks."
        },
        help_text="Events are POSTed here as JSON, signed per the Standard Webhooks spec.",
    )
    enabled = forms.BooleanField(label="Send events", required=False, initial=True)
    basic_username = forms.CharField(
        label="Basic auth username",
        max_length=150,
        required=False,
        help_text="Optional HTTP Basic credentials sent with every event.",
    )
    basic_password = forms.CharField(
        label="Basic auth password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}, render_value=False),
    )
    clear_basic_password = forms.BooleanField(label="Remove the stored password", required=False)
    events = forms.MultipleChoiceField(
        label="Events",
        choices=EVENT_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        initial=list(SELECTABLE_EVENT_TYPES),
        help_text="The events sent to this URL; none checked sends every event "
        "(the test event is always sent).",
    )
    legacy_event_names = forms.BooleanField(
        label='Send "file-transfer" instead of "file_transfer"',
        required=False,
        help_text="For receivers written against EnableX's older notification docs.",
    )

    def __init__(self, *args, endpoint: WebhookEndpoint | None = None, **kwargs):
        if endpoint is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "url": endpoint.url,
                "enabled": endpoint.enabled,
                "basic_username": endpoint.basic_username,
                "events": selected_events(endpoint),
                "legacy_event_names": endpoint.legacy_event_names,
            }
        super().__init__(*args, **kwargs)
        if endpoint is not None:
            self.fields["url"].stored = endpoint.url  # type: ignore[attr-defined]
        self.has_stored_password = bool(endpoint and endpoint.basic_password)
        self.fields["basic_password"].help_text = (
            "A password is stored; leave blank to keep it."
            if self.has_stored_password
            else "No password stored."
        )
        if not self.has_stored_password:
            del self.fields["clear_basic_password"]

    def clean_events(self) -> list[str]:
        """Stored as [] when every event (or none) is chosen, so events added
        later are sent too."""
        chosen = set(self.cleaned_data["events"] or [])
        if chosen >= set(SELECTABLE_EVENT_TYPES):
            return []
        return [event for event in SELECTABLE_EVENT_TYPES if event in chosen]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        if "@" in urlsplit(url).netloc:
            raise forms.ValidationError("Put credentials in the Basic auth fields, not in the URL.")
        return url

    def clean(self):
        cleaned = super().clean()
        username = cleaned.get("basic_username", "")
        password = cleaned.get("basic_password", "")
        clearing = cleaned.get("clear_basic_password", False)
        if password and not username:
            self.add_error("basic_username", "Give the username that goes with the password.")
        if password and clearing:
            self.add_error("basic_password", "Either give a new password or remove it, not both.")
        keeps_password = self.has_stored_password and not clearing
        if username and not password and not keeps_password:
            self.add_error("basic_password", "Give the password for this Basic auth username.")
        return cleaned

    def password_change(self):
        """What do_configure_webhook should do with the stored password."""
        from .actions import KEEP

        if self.cleaned_data.get("clear_basic_password"):
            return ""
        return self.cleaned_data.get("basic_password") or KEEP


def selected_events(endpoint: WebhookEndpoint | None) -> list[str]:
    if endpoint is None or not endpoint.events:
        return list(SELECTABLE_EVENT_TYPES)
    return [event for event in SELECTABLE_EVENT_TYPES if event in endpoint.events]
