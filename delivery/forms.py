"""Forms of the delivery pages and command: the part every destination shares
(name, types, on/off, manifest) and, from the registry, the kind's own form."""

from __future__ import annotations

from typing import Any

from django import forms

from .destinations import REGISTRY, destination_class, offered_kinds
from .destinations.base import DestinationForm
from .models import DeliveryDestination, FileType

DEFAULT_TYPES = [FileType.TRANSCODED, FileType.CHAT, FileType.METADATA]


class KindChoiceForm(forms.Form):
    kind = forms.ChoiceField(choices=(), label="Deliver files to")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Read per form: the offer depends on the settings (DELIVERY_LOCAL_ROOTS).
        kind = self.fields["kind"]
        assert isinstance(kind, forms.ChoiceField)
        kind.choices = list(offered_kinds().items())


class DestinationCommonForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Your name for this destination.")
    enabled = forms.BooleanField(required=False, initial=True, label="Deliver to this destination")
    file_types = forms.MultipleChoiceField(
        choices=FileType.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=DEFAULT_TYPES,
        label="Deliver file types",
    )
    write_manifest = forms.BooleanField(
        required=False,
        initial=True,
        label="Write manifest.json last",
        help_text="Names, sizes and sha256 of the session's files, written once all are delivered.",
    )

    def __init__(self, *args: Any, project, instance: DeliveryDestination | None = None, **kwargs):
        if instance is not None:
            kwargs.setdefault(
                "initial",
                {
                    "name": instance.name,
                    "enabled": instance.enabled,
                    "file_types": instance.file_types,
                    "write_manifest": instance.write_manifest,
                },
            )
        super().__init__(*args, **kwargs)
        self.project = project
        self.instance = instance

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        taken = DeliveryDestination.objects.filter(project=self.project, name=name)
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError("Another destination of this project has this name.")
        return name


def kind_form(
    kind: str,
    data: Any = None,
    *,
    destination: DeliveryDestination | None = None,
    web: bool = True,
    app_id: str = "",
) -> DestinationForm:
    """The kind's own form, filled with the stored (non-secret) settings; the
    stored secrets make their fields optional (blank keeps them). ``web``:
    for the pages (secrets only an action sets are left out), else for the
    command (fields only the pages offer are left out)."""
    if kind not in REGISTRY:
        raise ValueError(f"Unknown destination kind {kind!r}; choose one of {', '.join(REGISTRY)}")
    form_class = destination_class(kind).form_class
    initial = dict(destination.config) if destination is not None else {}
    stored = frozenset(destination.secrets or {}) if destination is not None else frozenset()
    if destination is not None:
        app_id = app_id or destination.project.app_id
    form = form_class(data, initial=initial, stored_secrets=stored, app_id=app_id)
    hidden = destination_class(kind).action_only_secrets if web else form_class.web_only_fields
    for name in hidden:
        form.fields.pop(name, None)
    return form


class TrustForm(forms.Form):
    fingerprint = forms.RegexField(regex=r"^SHA256:[A-Za-z0-9+/]{20,}=*$")


class PastSessionsForm(forms.Form):
    since = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), label="From")
    until = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), label="To (inclusive)")
    destination = forms.ModelChoiceField(
        queryset=DeliveryDestination.objects.none(),
        required=False,
        empty_label="Every enabled destination",
    )

    def __init__(self, *args: Any, project, **kwargs: Any):
        super().__init__(*args, **kwargs)
        destination = self.fields["destination"]
        assert isinstance(destination, forms.ModelChoiceField)
        destination.queryset = DeliveryDestination.objects.filter(project=project)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        assert data is not None  # Form.clean() returns cleaned_data; the stubs allow None
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return data


def destination_settings(form: DestinationForm) -> tuple[dict[str, Any], dict[str, str]]:
    """(public config, new secrets) of a valid kind form, the plain values
    ``actions.destinations.do_save_destination`` takes: blank secrets are left out (the
    stored ones stay) and disabled fields, shown but not changeable, dropped."""
    public, new_secrets = form.split()
    for name, field in form.fields.items():
        if field.disabled:
            public.pop(name, None)
    return public, new_secrets
