"""Model fields whose values are encrypted at rest (see portal.crypto)."""

from __future__ import annotations

import json
from typing import Any

from django.db import models

from . import crypto


class EncryptedTextField(models.TextField):
    """A text value stored as a Fernet token. Empty strings and None are
    stored as they are so "no secret" stays queryable."""

    description = "Text encrypted with MultiFernet"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value in (None, ""):
            return value
        return self.decode(crypto.decrypt(value))

    def to_python(self, value: Any) -> Any:
        return value

    def get_prep_value(self, value: Any) -> Any:
        if value in (None, ""):
            return value
        return crypto.encrypt(self.encode(value))

    def encode(self, value: Any) -> str:
        return str(value)

    def decode(self, text: str) -> Any:
        return text


class EncryptedJSONField(EncryptedTextField):
    """A JSON document (e.g. a destination's secrets) stored encrypted."""

    description = "JSON encrypted with MultiFernet"

    # django-stubs types fields by these; the value is a JSON document, not the parent's str.
    _pyi_private_set_type: Any
    _pyi_private_get_type: Any

    def get_prep_value(self, value: Any) -> Any:
        if value is None:
            return None
        return crypto.encrypt(self.encode(value))

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None:
            return None
        if value == "":
            return {}
        return self.decode(crypto.decrypt(value))

    def encode(self, value: Any) -> str:
        return json.dumps(value, sort_keys=True)

    def decode(self, text: str) -> Any:
        return json.loads(text)
