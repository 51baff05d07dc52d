"""Local or NFS folder destination, against a temporary folder: paths and
symlinks that lead out, read-only mounts; and the operator's rule
(DELIVERY_LOCAL_ROOTS, never DATA_DIR) tried as a hostile project
administrator would, in the form, the command and at run time. What every
kind does is in the contract (tests/delivery/contract.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from delivery import engine, scheduling
from delivery.destinations import destination_class
from delivery.destinations.base import TransferError
from delivery.destinations.local import LocalFolderDestination, LocalFolderForm
from delivery.forms import KindChoiceForm
from delivery.models import Delivery, DeliveryDestination
from tests.delivery import Progress, random_file
from tests.delivery.engine_support import make_session

# The folders below live in the test's tmp folder (DELIVERY_LOCAL_ROOTS).
pytestmark = pytest.mark.usefixtures("local_roots")


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "mnt"
    path.mkdir()
    return path


@pytest.fixture
def dest(folder):
    with LocalFolderDestination({"path": str(folder), "root": "/portal/"}) as d:
        yield d


def test_it_refuses_a_path_that_climbs_out_of_the_root_into_the_shared_folder(folder, dest):
    with pytest.raises(TransferError) as caught:
        dest.upload(None, "../beside-root.txt", Progress())  # type: ignore[arg-type]
    assert caught.value.permanent
    assert not (folder / "beside-root.txt").exists()


@pytest.mark.parametrize(
    "path", ["../../escape.txt", "room/../../../escape.txt", "/../../escape.txt"]
)
def test_it_refuses_a_path_that_escapes_the_folder(folder, dest, tmp_path, path):
    local = random_file(tmp_path / "src" / "a.txt", 10)
    with pytest.raises(TransferError) as caught:
        dest.upload(local, path, Progress())
    assert caught.value.permanent
    assert "escapes" in caught.value.message
    assert not (folder / "escape.txt").exists() and not (tmp_path / "escape.txt").exists()


def test_it_refuses_a_symlink_that_leads_out_of_the_folder(folder, dest, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (folder / "portal").mkdir()
    os.symlink(outside, folder / "portal" / "room1")
    with pytest.raises(TransferError):
        dest.upload(random_file(tmp_path / "src" / "a.txt", 10), "room1/42/a.txt", Progress())
    assert list(outside.iterdir()) == []


def test_a_read_only_folder_is_a_permanent_error(folder, dest, tmp_path):
    read_only = folder / "portal"
    read_only.mkdir()
    if os.geteuid() == 0:
        # root ignores permission bits: a read-only mount is what it cannot write.
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(read_only)],
                       check=True)  # fmt: skip
        undo = ["umount", str(read_only)]
    else:
        read_only.chmod(0o500)
        undo = ["chmod", "700", str(read_only)]
    try:
        with pytest.raises(TransferError) as caught:
            dest.upload(random_file(tmp_path / "src" / "a.txt", 10), "a.txt", Progress())
        assert caught.value.permanent
        assert str(read_only) in caught.value.message
    finally:
        subprocess.run(undo, check=True)


def test_the_form_wants_an_absolute_path(folder):
    assert not LocalFolderForm({"path": "relative/dir"}).is_valid()
    form = LocalFolderForm({"path": str(folder), "root": "/a/b/"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["root"] == "a/b"


# -- the operator's rule, tried as a hostile project administrator ------------------------------


@dataclass
class Attack:
    path: str  # the folder the attacker gives
    rule: str  # words of the refusal
    victim: Path | None = None  # a folder that must stay untouched


@pytest.fixture
def layout(settings, tmp_path):
    """Two allowed roots side by side, a folder outside them, DATA_DIR with the
    static files nginx serves."""
    roots = tmp_path / "roots"
    for name in ("a", "b", "a-sibling"):
        (roots / name).mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    settings.STATIC_ROOT = settings.DATA_DIR / "static"
    settings.STATIC_ROOT.mkdir(parents=True)
    settings.DELIVERY_LOCAL_ROOTS = [str(roots / "a"), str(roots / "b")]
    return tmp_path


def attack(name: str, settings, tmp: Path) -> Attack:
    roots = tmp / "roots"
    outside = "is not inside a folder this portal may deliver to"
    if name == "root of the file system":
        return Attack("/", outside)
    if name == "/etc":
        return Attack("/etc", outside)
    if name == "DATA_DIR/static":
        # Even under a root that contains DATA_DIR (here the whole tmp folder).
        settings.DELIVERY_LOCAL_ROOTS = [str(tmp)]
        return Attack(str(settings.STATIC_ROOT), "inside the portal's own data folder (DATA_DIR)",
                      settings.STATIC_ROOT)  # fmt: skip
    if name == "symlink out of the root":
        os.symlink(tmp / "outside", roots / "a" / "link")
        return Attack(str(roots / "a" / "link"), outside, tmp / "outside")
    if name == "symlink into DATA_DIR":
        settings.DELIVERY_LOCAL_ROOTS = [str(tmp)]
        os.symlink(settings.STATIC_ROOT, tmp / "innocent")
        return Attack(str(tmp / "innocent"), "inside the portal's own data folder",
                      settings.STATIC_ROOT)  # fmt: skip
    if name == ".. traversal":
        return Attack(str(roots / "a" / ".." / ".." / "outside"), outside, tmp / "outside")
    if name == "another root's sibling":
        return Attack(str(roots / "a-sibling"), outside, roots / "a-sibling")
    raise AssertionError(name)


ATTACKS = [
    "root of the file system", "/etc", "DATA_DIR/static", "symlink out of the root",
    "symlink into DATA_DIR", ".. traversal", "another root's sibling",
]  # fmt: skip


def form_error(**data) -> str:
    form = LocalFolderForm(data)
    assert not form.is_valid()
    return " ".join(e for errors in form.errors.values() for e in errors)


@pytest.mark.parametrize("name", ATTACKS)
def test_the_form_refuses_the_folder_naming_the_rule(name, layout, settings):
    hostile = attack(name, settings, layout)
    assert hostile.rule in form_error(path=hostile.path)


@pytest.mark.parametrize("name", ATTACKS)
def test_delivery_configure_refuses_the_folder_and_exits_non_zero(name, layout, settings, world):
    hostile = attack(name, settings, layout)
    with pytest.raises(CommandError) as caught:
        call_command("delivery", "configure", world.app_id, "--kind", "local",
                     "--set", f"path={hostile.path}", stdout=StringIO())  # fmt: skip
    assert "Destination not saved" in str(caught.value) and hostile.rule in str(caught.value)
    assert not DeliveryDestination.objects.exists()


def test_delivery_configure_exits_non_zero_from_the_shell(layout, settings, world, capsys):
    from django.core.management import ManagementUtility

    with pytest.raises(SystemExit) as exited:
        ManagementUtility(["manage.py", "delivery", "configure", world.app_id, "--kind", "local",
                           "--set", "path=/etc"]).execute()  # fmt: skip
    assert exited.value.code != 0
    assert "/etc is not inside a folder this portal may deliver to" in capsys.readouterr().err


@pytest.mark.parametrize("name", ATTACKS)
def test_a_run_refuses_the_folder_for_good_with_the_same_message(name, layout, settings, world):
    """A destination saved before the rule (or before the operator narrowed
    DELIVERY_LOCAL_ROOTS, or before a symlink was swapped in) fails at once."""
    hostile = attack(name, settings, layout)
    before = sorted(hostile.victim.rglob("*")) if hostile.victim else []
    dest = DeliveryDestination.objects.create(
        project=world.project, name="nas", kind="local", file_types=["chat"],
        config={"path": hostile.path, "root": ""},
    )  # fmt: skip
    session = make_session(world.project, {"chat.json": ("chat", b'{"messages": []}\n')})
    scheduling.schedule_deliveries_for_session(session.pk)
    delivery = Delivery.objects.get(destination=dest)
    engine.run_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.FAILED and delivery.attempts == 1
    assert delivery.last_error == form_error(path=hostile.path)
    if hostile.victim:
        assert sorted(hostile.victim.rglob("*")) == before
    assert not os.path.exists(os.path.join(hostile.path, session.room.room_id))
    store = settings.RECORDINGS_ROOT
    assert [p for p in layout.rglob(session.conf_num) if not p.is_relative_to(store)] == []


def test_a_root_joined_to_an_allowed_path_may_not_lead_out_either(layout, settings):
    allowed = str(layout / "roots" / "a")
    assert LocalFolderForm({"path": allowed, "root": "in/here"}).is_valid()
    assert "is not inside a folder" in form_error(path=allowed, root="../../outside")


def test_a_folder_inside_an_allowed_root_is_accepted_and_delivered_to(layout, world):
    path = layout / "roots" / "b" / "customer"
    form = LocalFolderForm({"path": str(path), "root": "rec"})
    assert form.is_valid(), form.errors
    dest = DeliveryDestination.objects.create(
        project=world.project, name="nas", kind="local", file_types=["chat"],
        config={"path": str(path), "root": "rec"},
    )  # fmt: skip
    path.mkdir()
    session = make_session(world.project, {"chat.json": ("chat", b"[]\n")})
    scheduling.schedule_deliveries_for_session(session.pk)
    engine.run_delivery(Delivery.objects.get(destination=dest).pk)
    assert (path / "rec" / session.room.room_id / session.conf_num / "chat.json").read_bytes() == (
        b"[]\n"
    )


def test_a_root_set_aside_inside_data_dir_is_allowed_but_not_the_portals_own_folders(settings):
    delivered = settings.DATA_DIR / "delivered"  # what make run's demo does
    settings.DELIVERY_LOCAL_ROOTS = [str(delivered), str(settings.RECORDINGS_ROOT)]
    assert LocalFolderForm({"path": str(delivered / "demo")}).is_valid()
    assert "DATA_DIR" in form_error(path=str(settings.RECORDINGS_ROOT / "x"))
    assert "DATA_DIR" in form_error(path=str(settings.DATA_DIR))


def test_test_connection_does_not_tell_which_outside_folders_exist(client, world, layout):
    """"Test connection" answers the same for an existing and a missing folder
    outside the roots: nothing outside is looked at."""
    client.force_login(world.alice)
    answers = []
    for name, path in (("there", layout / "outside"), ("missing", layout / "nowhere")):
        dest = DeliveryDestination.objects.create(
            project=world.project, name=name, kind="local", file_types=["chat"],
            config={"path": str(path), "root": ""},
        )  # fmt: skip
        url = reverse("delivery:test", args=[world.app_id, dest.pk])
        html = client.post(url, follow=True).content.decode()
        [shown] = re.findall(r'<ul class="messages">(.*?)</ul>', html, re.S)
        answers.append(shown.replace(str(path), "PATH").replace(name, "NAME"))
    assert answers[0] == answers[1]
    assert "is not inside a folder this portal may deliver to" in answers[0]
    assert not list((layout / "outside").iterdir())


def test_without_roots_the_kind_is_not_offered_anywhere(client, world, settings, tmp_path):
    settings.DELIVERY_LOCAL_ROOTS = []
    assert destination_class("local").unavailable()
    assert "local" not in dict(KindChoiceForm().fields["kind"].choices)
    client.force_login(world.alice)
    url = reverse("delivery:settings", args=[world.app_id])
    assert "Local or NFS folder" not in client.get(url).content.decode()
    response = client.post(url, {"kind": "local", "name": "nas", "enabled": "on",
                                 "file_types": ["chat"], "path": str(tmp_path)})  # fmt: skip
    assert response.status_code == 400 and "DELIVERY_LOCAL_ROOTS" in response.content.decode()
    with pytest.raises(CommandError) as caught:
        call_command("delivery", "configure", world.app_id, "--kind", "local",
                     "--set", f"path={tmp_path}", stdout=StringIO())  # fmt: skip
    assert "DELIVERY_LOCAL_ROOTS" in str(caught.value)
    assert not DeliveryDestination.objects.exists()


def test_with_roots_the_kind_is_offered(client, world):
    assert "local" in dict(KindChoiceForm().fields["kind"].choices)
    client.force_login(world.alice)
    html = client.get(reverse("delivery:settings", args=[world.app_id])).content.decode()
    assert "Local or NFS folder" in html


def test_a_relative_root_is_a_configuration_error(tmp_path):
    """A relative root would depend on the worker's current folder."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings", "PORTAL_TESTING": "1",
           "DATA_DIR": str(tmp_path), "DELIVERY_LOCAL_ROOTS": "/mnt/ok,relative/dir"}  # fmt: skip
    run = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env,
                         cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True)  # fmt: skip
    assert run.returncode != 0 and "DELIVERY_LOCAL_ROOTS must list absolute folders" in run.stderr
