"""The benchmarks run in a fresh clone (`make bench`), not in this suite, and some
of their code runs inside `manage.py shell -c` strings that no linter reads. Every
`from X import Y` in a bench script, in code or in such a string, must still
resolve: bench/end_to_end.py once read webhook attempts from the app they had
left and failed only when `make bench` reached it."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
FROM_IMPORT = re.compile(r"\bfrom ((?:projects|recordings|delivery|webhooks|portal|demo|tests)[\w.]*) import ([\w, ]+)")


def imports() -> list[tuple[str, str, str]]:
    found = []
    for script in sorted(BENCH.glob("*.py")):
        for module, names in FROM_IMPORT.findall(script.read_text()):
            for name in (n.split(" as ")[0].strip() for n in names.split(",")):
                if name:
                    found.append((script.name, module, name))
    return found


def test_the_bench_scripts_import_the_project():
    assert len(imports()) > 10


@pytest.mark.parametrize(("script", "module", "name"), imports())
def test_every_project_import_in_a_bench_script_resolves(script, module, name):
    loaded = importlib.import_module(module)
    assert hasattr(loaded, name) or importlib.util.find_spec(f"{module}.{name}"), (
        f"bench/{script}: from {module} import {name}"
    )
