from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from portal.fields import EncryptedTextField

OUR_APPS = ("projects", "webhooks", "recordings", "delivery")


def test_every_model_is_registered_in_the_admin():
    missing = [
        model.__name__
        for app in OUR_APPS
        for model in apps.get_app_config(app).get_models()
        if not admin.site.is_registered(model)
    ]
    assert not missing


@pytest.mark.parametrize(
    "model", [m for a in OUR_APPS for m in apps.get_app_config(a).get_models()], ids=str
)
def test_admin_pages_never_show_secret_fields(model, admin_client, world):
    hidden = {
        f.name
        for f in model._meta.concrete_fields
        if isinstance(f, EncryptedTextField) or f.name.endswith("_hash")
    }
    model_admin = admin.site._registry[model]
    request = admin_client.get("/").wsgi_request
    shown = set(model_admin.get_fields(request)) | set(model_admin.get_list_display(request))
    assert not (hidden & shown)
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    assert admin_client.get(url).status_code == 200
