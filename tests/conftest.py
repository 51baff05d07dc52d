"""Shared fixtures: three users as in healthchecks' BaseTestCase — alice owns
the project, bob is a viewer member, charlie is an outsider."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from projects.actions.projects import NewProject, do_create_project
from projects.models import Membership, Project, Role

PASSWORD = "correct horse battery staple"


@dataclass
class World:
    alice: object
    bob: object
    charlie: object
    project: Project
    created: NewProject

    @property
    def app_id(self) -> str:
        return self.project.app_id


@pytest.fixture
def make_user(django_user_model):
    def make(username: str, **extra):
        return django_user_model.objects.create_user(
            username, f"{username}@example.com", PASSWORD, **extra
        )

    return make


@pytest.fixture
def world(db, make_user) -> World:
    alice, bob, charlie = make_user("alice"), make_user("bob"), make_user("charlie")
    created = do_create_project("Alpha", acting_user=alice)
    Membership.objects.create(project=created.project, user=bob, role=Role.VIEWER)
    return World(alice, bob, charlie, created.project, created)


@pytest.fixture
def member(world, make_user):
    """Return a logged-in client for a new member with the given role."""

    def make(role: str, client):
        user = make_user(f"member_{role}")
        Membership.objects.create(project=world.project, user=user, role=role)
        client.force_login(user)
        return user

    return make


@pytest.fixture(autouse=True)
def _loopback_servers_reachable(settings):
    """The test servers listen on loopback, which the egress guard refuses by
    default; tests of the refusal set OUTBOUND_ALLOWED_NETWORKS = [] again."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]


@pytest.fixture(autouse=True)
def _data_dir(settings, tmp_path):
    """Every test gets its own recording store and data folder."""
    settings.DATA_DIR = tmp_path / "data"
    settings.RECORDINGS_ROOT = settings.DATA_DIR / "recordings"
    storages = dict(settings.STORAGES)
    storages["recordings"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(settings.RECORDINGS_ROOT)},
    }
    settings.STORAGES = storages
    settings.AXES_ENABLED = False
    # Fast hashing keeps the suite quick; production uses Django's PBKDF2 default.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def local_roots(settings, tmp_path):
    """Local folder destinations are an operator feature: allow the test's own
    tmp folder (DELIVERY_LOCAL_ROOTS) and nothing else. DATA_DIR lies inside it
    (see _data_dir above), so the rule that keeps deliveries out of DATA_DIR holds."""
    settings.DELIVERY_LOCAL_ROOTS = [str(tmp_path)]
    return tmp_path


@pytest.fixture
def run_manage_py(monkeypatch):
    """Run ``manage.py <argv>`` in-process as the shell would (SystemExit with
    its exit code). Django closes every database connection when a command
    ends; here that would close the test's own transaction on PostgreSQL."""
    from django.core.management import execute_from_command_line
    from django.db import connections

    monkeypatch.setattr(connections, "close_all", lambda: None)

    def run(*args: str) -> None:
        execute_from_command_line(["manage.py", *args])

    return run


@pytest.fixture(autouse=True)
def _no_kept_ssh_connections():
    """SSH connections a test's deliveries leave in the worker's pool are closed
    after it, so each test logs in as it expects (tests/delivery/test_ssh_pool.py
    covers the reuse itself)."""
    yield
    from delivery.destinations.ssh import pool

    pool.close_all()
