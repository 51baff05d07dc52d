"""Every change of state is a ``do_<verb>_<noun>()`` in an app's actions
module(s), taking the acting person as a keyword with no default, so each
caller says who acts (``acting_user=None`` out loud for the APIs, the media
server and the shell)."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ACTIONS = [
    "projects.actions.projects",
    "projects.actions.members",
    "projects.actions.rooms",
    "webhooks.actions",
    "recordings.actions.sessions",
    "recordings.actions.recorders",
    "delivery.actions.destinations",
    "delivery.actions.deliveries",
    # A kind's own actions live in its folder (delivery/destinations/<kind>/).
    "delivery.destinations.gdrive.actions",
    "delivery.destinations.ssh.actions",
]
# Modules of another piece of work that keep their own ``do_*`` for now.
ELSEWHERE: set[str] = set()
# Not a person's action: the delivery engine notes a Google grant that stopped working.
NO_ACTOR = {"do_record_account_error"}


def actions():
    for name in ACTIONS:
        module = importlib.import_module(name)
        for attr, func in vars(module).items():
            if attr.startswith("do_") and inspect.isfunction(func) and func.__module__ == name:
                yield f"{name}.{attr}", func


@pytest.mark.parametrize(
    "name, func", list(actions()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_action_takes_acting_user_by_keyword_without_default(name, func):
    if func.__name__ in NO_ACTOR:
        return
    parameter = inspect.signature(func).parameters.get("acting_user")
    assert parameter is not None, f"{name} does not take acting_user"
    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, name
    assert parameter.default is inspect.Parameter.empty, f"{name}: acting_user has a default"


def test_every_action_is_named_do_verb_noun():
    for name, func in actions():
        assert re.fullmatch(r"do_[a-z]+(_[a-z0-9]+)+", func.__name__), name


def test_do_functions_live_only_in_actions_modules():
    allowed = {name.replace(".", "/") + ".py" for name in ACTIONS} | ELSEWHERE
    found = []
    for app in ("projects", "webhooks", "recordings", "delivery", "portal"):
        for path in (ROOT / app).rglob("*.py"):
            relative = path.relative_to(ROOT).as_posix()
            if "/migrations/" in relative or relative in allowed:
                continue
            if re.search(r"^def do_", path.read_text(), re.MULTILINE):
                found.append(relative)
    assert not found, f"do_* functions outside the actions modules: {found}"
