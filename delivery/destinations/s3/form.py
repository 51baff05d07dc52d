"""The settings of an S3 destination: bucket, region, keys, endpoint of an
S3-compatible store, storage class and server-side encryption."""

from __future__ import annotations

import re
from typing import Any

from django import forms

from ..base import DestinationForm, PublicURLField

STORAGE_CLASSES = [
    ("", "Bucket default"),
    ("STANDARD", "Standard"),
    ("INTELLIGENT_TIERING", "Intelligent-Tiering"),
    ("STANDARD_IA", "Standard-IA"),
    ("ONEZONE_IA", "One Zone-IA"),
    ("GLACIER_IR", "Glacier Instant Retrieval"),
    ("GLACIER", "Glacier Flexible Retrieval"),
    ("DEEP_ARCHIVE", "Glacier Deep Archive"),
    ("REDUCED_REDUNDANCY", "Reduced redundancy"),
]
SSE_CHOICES = [
    ("", "None (bucket default)"),
    ("AES256", "AES256 (SSE-S3)"),
    ("aws:kms", "aws:kms (SSE-KMS)"),
]
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


class S3Form(DestinationForm):
    secret_fields = ("secret_access_key",)

    bucket = forms.CharField(max_length=63)
    region = forms.CharField(
        required=False, initial="us-east-1", help_text="e.g. eu-west-1; needed for AWS."
    )
    access_key_id = forms.CharField(max_length=128)
    secret_access_key = forms.CharField(max_length=256)
    endpoint_url = PublicURLField(
        required=False,
        assume_scheme="https",
        help_text="Only for S3-compatible stores, e.g. https://minio.example.com:9000.",
    )
    storage_class = forms.ChoiceField(choices=STORAGE_CLASSES, required=False)
    sse = forms.ChoiceField(choices=SSE_CHOICES, required=False, label="Server-side encryption")

    def clean_bucket(self) -> str:
        bucket = self.cleaned_data["bucket"].strip()
        if not BUCKET_RE.match(bucket):
            raise forms.ValidationError(
                "Give the bucket name only (3-63 lowercase letters, digits, dots, hyphens), "
                "not an s3:// or https:// address."
            )
        return bucket

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        assert data is not None  # Form.clean() returns cleaned_data; the stubs allow None
        if not data.get("endpoint_url") and not (data.get("region") or "").strip():
            self.add_error("region", "Give the bucket's AWS region, e.g. eu-west-1.")
        old_key_id = (self.initial or {}).get("access_key_id")
        new_key_id = data.get("access_key_id")
        if (
            old_key_id
            and new_key_id
            and new_key_id != old_key_id
            and not data.get("secret_access_key")
        ):
            self.add_error("secret_access_key", "A new access key id needs its secret access key.")
        return data

