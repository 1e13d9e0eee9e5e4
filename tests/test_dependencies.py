"""Every third-party module the shipped packages import is declared in pyproject.toml:
the service and the client library need only the main dependencies, the benchmark its own
extra besides. A module that only a test extra happens to install breaks `pip install`."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions, requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
OURS = {"rooms", "server", "client", "bench"}


def _name(name: str) -> str:
    return name.lower().replace("_", "-")


def declared(*extras: str) -> set[str]:
    """The distributions pyproject.toml asks for, with those the extras it names bring
    (uvicorn[standard] brings uvloop)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    names = set()
    for requirement in map(Requirement, lines):
        names.add(_name(requirement.name))
        for wanted_extra in requirement.extras:
            for line in requires(requirement.name) or ():
                brought = Requirement(line)
                if brought.marker is not None and brought.marker.evaluate(
                        {"extra": wanted_extra}):
                    names.add(_name(brought.name))
    return names


def imported(package: str) -> set[str]:
    """Top-level modules imported anywhere in `package` (at module level or inside
    functions), ours and the standard library left out."""
    names: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in OURS and n not in sys.stdlib_module_names}


@pytest.mark.parametrize(("package", "extras"), [
    ("rooms", ()), ("server", ()), ("client", ()), ("bench", ("bench",)),
])
def test_every_import_is_a_declared_dependency(package: str, extras: tuple[str, ...]) -> None:
    distributions = packages_distributions()
    allowed = declared(*extras)
    missing = {}
    for module in imported(package):
        owners = {_name(d) for d in distributions.get(module, [module])}
        if not owners & allowed:
            missing[module] = sorted(owners)
    assert missing == {}, f"{package}/ imports modules no declared dependency provides"
