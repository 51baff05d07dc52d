"""The registry of destination kinds (delivery/destinations/__init__.py): every
kind is one folder, every delivery page renders for every kind, and code
outside the kinds' folders never names a kind."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest
from django.urls import reverse

from delivery.destinations import (
    KIND_CHOICES,
    KIND_URLCONFS,
    REGISTRY,
    destination_class,
    kinds_where,
)
from delivery.destinations.base import ATTENTION_KEY, Destination, DestinationForm
from delivery.destinations.ssh import SSHDestination
from delivery.models import Delivery, DeliveryDestination
from tests.factories import make_recording

ROOT = Path(__file__).resolve().parents[2]
KIND_FOLDERS = ROOT / "delivery" / "destinations"


@pytest.mark.parametrize("kind", list(REGISTRY))
def test_every_kind_has_a_class_with_its_kind_label_and_form(kind):
    cls = destination_class(kind)
    assert issubclass(cls, Destination) and cls.kind == kind
    assert issubclass(cls.form_class, DestinationForm)
    assert (kind, REGISTRY[kind][0]) in KIND_CHOICES


@pytest.mark.parametrize("kind", list(REGISTRY))
def test_every_kind_is_one_folder_whose_package_exports_its_class(kind):
    cls = destination_class(kind)
    assert (KIND_FOLDERS / kind / "__init__.py").is_file()
    assert cls.__module__.startswith(f"delivery.destinations.{kind}.")
    assert REGISTRY[kind][1] == f"delivery.destinations.{kind}.{cls.__name__}"


def test_the_url_configuration_names_every_kinds_pages_and_loads_no_ssh_library():
    assert sorted(KIND_URLCONFS) == sorted({destination_class(k).urls for k in REGISTRY} - {""})
    # The web loads its URLs at start: paramiko only once an SSH kind is used.
    code = (
        "import sys, django; django.setup(); import portal.urls; "
        "print('paramiko' in sys.modules)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings", "PORTAL_TESTING": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False", out.stderr


def test_an_unknown_kind_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown destination kind 'dropbox'"):
        destination_class("dropbox")


def test_capabilities_come_from_the_classes_not_from_kind_checks():
    assert [k for k in REGISTRY if issubclass(destination_class(k), SSHDestination)] == [
        "sftp",
        "scp",
    ]
    assert kinds_where("account_service") == ["gdrive"]
    assert destination_class("ftp").pinned_key_name == "certificate"
    assert destination_class("sftp").pinned_key_name == "host key"


# --- every page, every kind ------------------------------------------------------

CONFIGS = {
    "local": ({}, {}),  # the path is the test's local root (filled in below)
    "s3": ({"bucket": "recordings", "region": "eu-west-1", "access_key_id": "AKIAEXAMPLE"},
           {"secret_access_key": "s3-secret"}),
    "azure": ({"auth": "key", "account_name": "portalrec", "container": "recordings"},
              {"account_key": "azure-secret"}),
    "ftp": ({"host": "ftp.example.com", "port": 21, "username": "rec", "tls": "explicit",
             "pinned_fingerprint": "SHA256:" + "A" * 43}, {"password": "ftp-secret"}),
    "sftp": ({"host": "sftp.example.com", "port": 22, "username": "rec", "root": "/srv",
              "public_key": "ssh-ed25519 AAAAC3Nz recording-portal-test",
              "pinned_fingerprint": "SHA256:" + "B" * 43}, {"password": "sftp-secret"}),
    "scp": ({"host": "scp.example.com", "port": 22, "username": "rec", "root": "in"},
            {"password": "scp-secret"}),
    "gdrive": ({"folder": "Recordings/Portal", "account_email": "rec@example.com"},
               {"refresh_token": "1//gdrive-secret"}),
}  # fmt: skip


@pytest.fixture
def saved(world, local_roots):
    """A destination of every registered kind, each with a delivery; a kind
    added without a line in CONFIGS still gets one (with an empty config)."""
    recording = make_recording(world.project)
    rows = {}
    for kind in REGISTRY:
        config, secrets = CONFIGS.get(kind, ({}, {}))
        if kind == "local":
            config = {"path": str(local_roots)}
        rows[kind] = DeliveryDestination.objects.create(
            project=world.project, name=f"dest-{kind}", kind=kind, file_types=["transcoded"],
            config=config, secrets=secrets,
        )  # fmt: skip
        Delivery.objects.create(session=recording.session, destination=rows[kind])
    return rows


def test_the_registry_test_knows_every_kind():
    assert set(CONFIGS) == set(REGISTRY), "add a saved configuration of the new kind to CONFIGS"


def _page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.content[:500])
    return response.content.decode()


def test_the_list_of_destinations_shows_every_kind_without_secrets(client, world, saved):
    client.force_login(world.alice)
    html = _page(client, reverse("delivery:settings", args=[world.app_id]))
    for kind, dest in saved.items():
        assert dest.name in html and destination_class(kind).label in html
        for secret in dest.secrets.values():
            assert secret not in html


@pytest.mark.parametrize("kind", list(REGISTRY))
def test_the_add_form_of_every_kind_renders(client, world, local_roots, kind):
    client.force_login(world.alice)
    html = _page(client, reverse("delivery:settings", args=[world.app_id]) + f"?kind={kind}")
    assert f'name="kind" value="{kind}"' in html
    for name, field in destination_class(kind).form_class.base_fields.items():
        if name not in destination_class(kind).action_only_secrets and not field.disabled:
            assert f'name="{name}"' in html, name


@pytest.mark.parametrize("kind", list(REGISTRY))
def test_the_edit_page_of_every_kind_renders_with_its_panel(client, world, saved, kind):
    client.force_login(world.alice)
    dest = saved[kind]
    html = _page(client, reverse("delivery:edit", args=[world.app_id, dest.pk]))
    cls = destination_class(kind)
    assert dest.name in html
    if dest.config.get("pinned_fingerprint"):
        assert f"Trusted {cls.pinned_key_name}" in html
    panel = cls.settings_panel(dest)
    if panel is not None:
        context = {"row": {"obj": dest}, "panel": panel.context, "project": world.project}
        rendered = panel.template.render(context).strip()
        assert rendered and rendered.splitlines()[0] in html  # the card's opening tag
    for secret in dest.secrets.values():
        assert secret not in html


@pytest.mark.parametrize("kind", list(REGISTRY))
def test_a_destination_that_needs_attention_says_so_on_both_pages(client, world, saved, kind):
    client.force_login(world.alice)
    dest = saved[kind]
    dest.config = {**dest.config, ATTENTION_KEY: "The account must be connected again"}
    dest.save()
    listing = _page(client, reverse("delivery:settings", args=[world.app_id]))
    edit = _page(client, reverse("delivery:edit", args=[world.app_id, dest.pk]))
    assert "The account must be connected again" in listing
    for label, url in destination_class(kind).row_actions(dest):
        assert label in listing and url in listing
    assert edit


def test_the_deliveries_page_shows_a_delivery_to_every_kind(client, world, saved):
    client.force_login(world.bob)  # a viewer
    html = _page(client, reverse("delivery:deliveries", args=[world.app_id]))
    for dest in saved.values():
        assert dest.name in html


# --- no kind named outside the kinds -----------------------------------------------

SOURCE_DIRS = ["delivery", "projects", "recordings", "portal", "demo", "webhooks", "templates"]
KINDS = "|".join(re.escape(kind) for kind in REGISTRY)
KIND_CHECK = re.compile(
    rf"""kind\s*[!=]=\s*["'](?:{KINDS})["']"""  # kind == "sftp"
    rf"""|["'](?:{KINDS})["']\s*[!=]=\s*[\w.]*kind\b"""  # "sftp" == kind
    rf"""|kind\s+(?:not\s+)?in\s*[(\[{{]\s*["'](?:{KINDS})["']"""  # kind in ("sftp", ...)
)
# Names of what one kind does (Google's OAuth, SSH key pairs) in the code
# (names and strings; comments and docstrings may give examples) and the
# templates that serve every kind.
KIND_WORDS = re.compile(r"google|gdrive|oauth|\bssh|sftp|\bscp\b|keypair|key_pair|paramiko", re.I)
GENERIC = ["delivery", "templates/delivery"]


def _sources(dirs):
    for top in dirs:
        for path in sorted((ROOT / top).rglob("*")):
            relative = path.relative_to(ROOT).as_posix()
            if path.suffix not in (".py", ".html") or "/migrations/" in relative:
                continue
            if relative.startswith("delivery/destinations/") and any(
                relative.startswith(f"delivery/destinations/{kind}/") for kind in _kind_folders()
            ):
                continue
            yield relative, path.read_text()


def _kind_folders() -> set[str]:
    return {path.name for path in KIND_FOLDERS.iterdir() if (path / "__init__.py").is_file()}


def test_no_code_outside_the_kinds_compares_a_kind_with_a_kind_name():
    found = [
        f"{name}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
        for name, text in _sources(SOURCE_DIRS)
        for m in KIND_CHECK.finditer(text)
    ]
    assert not found, "name a capability or a hook of the kinds instead:\n" + "\n".join(found)


def _code(name: str, text: str):
    """(line, text) of what the scan reads: a template whole; of Python, the
    names and the strings that are not docstrings."""
    if not name.endswith(".py"):
        yield from enumerate(text.splitlines(), 1)
        return
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.NAME or (
            token.type == tokenize.STRING and not token.string.lstrip("rbfu").startswith(('"""', "'''"))
        ):
            yield token.start[0], token.string


def test_generic_delivery_code_names_no_kind_specifics():
    kind_names = {f'"{kind}"' for kind in REGISTRY} | {f"'{kind}'" for kind in REGISTRY}
    found = [
        f"{name}:{line}: {code}"
        for name, text in _sources(GENERIC)
        if name != "delivery/destinations/__init__.py"  # the registry lists the kinds
        for line, code in _code(name, text)
        if KIND_WORDS.search(code) or code in kind_names
    ]
    assert not found, "this belongs in the kind's folder:\n" + "\n".join(found)


def test_the_scans_catch_what_they_look_for():
    assert KIND_CHECK.search('if kind == "sftp":') and KIND_CHECK.search("{% if kind == 'ftp' %}")
    assert KIND_CHECK.search('"gdrive" != destination.kind')
    assert KIND_CHECK.search('destination.kind in ("sftp", "scp")')
    assert not KIND_CHECK.search('if name == "gdrive":')
    assert KIND_WORDS.search("from . import google_oauth")
    code = 'def f():\n    """Like a Google grant."""\n    # SSH\n    return "SCP placement"\n'
    assert [text for _line, text in _code("x.py", code) if KIND_WORDS.search(text)] == [
        '"SCP placement"'
    ]
