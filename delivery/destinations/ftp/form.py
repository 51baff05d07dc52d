"""The settings of an FTP / FTPS destination."""

from __future__ import annotations

from django import forms

from ..base import DestinationForm

TLS_CHOICES = [("none", "None (plain FTP)"), ("explicit", "Explicit FTPS (AUTH TLS)")]


class FTPForm(DestinationForm):
    secret_fields = ("password",)

    host = forms.CharField(help_text="Host name or IP address, e.g. ftp.example.com.")
    port = forms.IntegerField(initial=21, min_value=1, max_value=65535)
    username = forms.CharField()
    password = forms.CharField()
    passive = forms.BooleanField(
        required=False, initial=True, help_text="Passive mode; needed behind most firewalls."
    )
    tls = forms.ChoiceField(
        choices=TLS_CHOICES,
        initial="explicit",
        label="Encryption",
        help_text="Explicit FTPS checks the server certificate.",
    )

    def clean_host(self) -> str:
        host = self.cleaned_data["host"].strip()
        if "://" in host or "/" in host or "@" in host:
            raise forms.ValidationError("Give the host name only, e.g. ftp.example.com.")
        self.check_public_host("host", host)
        return host


