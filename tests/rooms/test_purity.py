"""rooms/ stays free of I/O: checked by importing it alone and by reading its source.

The import check runs in a fresh interpreter, because this pytest process has
long since imported asyncio, redis and friends for other tests.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOMS = Path(__file__).resolve().parents[2] / "rooms"
MODULES = sorted(f"rooms.{p.stem}" for p in ROOMS.glob("*.py") if p.stem != "__init__")

# Must not be loaded, even indirectly, by importing every rooms module.
FORBIDDEN_LOADED = frozenset({
    "asyncio", "socket", "redis", "starlette", "websockets", "uvicorn", "httpx", "ssl",
    "selectors", "subprocess", "server", "client", "jinja2", "aiohttp", "anyio",
})
# Must not be imported by name in rooms/*.py.
FORBIDDEN_IMPORTS = frozenset({
    "os", "pathlib", "io", "socket", "asyncio", "subprocess", "shutil", "tempfile", "glob",
    "select", "selectors", "ssl", "signal", "threading", "multiprocessing", "concurrent",
    "urllib", "http", "sqlite3", "logging", "time", "random", "secrets", "uuid", "importlib",
    "builtins", "sys", "fcntl", "mmap", "pickle", "shelve", "redis", "starlette", "websockets",
    "uvicorn", "httpx", "jinja2", "server", "client", "tests",
})
# Builtins that reach outside the process or run arbitrary code.
FORBIDDEN_CALLS = frozenset({
    "open", "input", "print", "exec", "eval", "compile", "__import__", "breakpoint",
})


def test_there_are_rooms_modules_to_check() -> None:
    assert {"rooms.machine", "rooms.views", "rooms.wire", "rooms.actions"} <= set(MODULES)


def _loaded_after_importing(modules: list[str]) -> set[str]:
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "import rooms\n"
        "print(json.dumps([rooms.__file__, sorted(sys.modules)]))\n"
    )
    # -E -s: no PYTHON* variables nor user site; "-c" puts the checkout (cwd) first on sys.path.
    result = subprocess.run(
        [sys.executable, "-E", "-s", "-c", script],
        cwd=ROOMS.parent, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    rooms_file, loaded = json.loads(result.stdout)
    assert Path(rooms_file).resolve() == ROOMS / "__init__.py"
    assert set(modules) <= set(loaded), "the subprocess did not import the modules"
    return set(loaded)


def _forbidden(loaded: set[str]) -> list[str]:
    return sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN_LOADED)


def test_importing_rooms_loads_no_io_module() -> None:
    assert _forbidden(_loaded_after_importing(MODULES)) == []


def test_the_import_check_would_notice() -> None:
    assert "asyncio" in _forbidden(_loaded_after_importing(["rooms.wire", "asyncio"]))


def _imports(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def _calls(tree: ast.AST) -> list[str]:
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                found.append(func.id)
            elif isinstance(func, ast.Attribute) and func.attr in {"open", "read_text",
                                                                 "write_text", "read_bytes",
                                                                 "write_bytes", "system"}:
                found.append(ast.unparse(func))
        elif isinstance(node, ast.Name) and node.id in {"__import__", "__builtins__"}:
            found.append(node.id)
    return found


@pytest.mark.parametrize("module", MODULES)
def test_source_imports_no_io(module: str) -> None:
    path = ROOMS / f"{module.removeprefix('rooms.')}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = [name for name in _imports(tree) if name.split(".")[0] in FORBIDDEN_IMPORTS]
    assert bad == [], f"{module} imports {bad}"
    assert _calls(tree) == [], f"{module} does I/O or runs code"


def test_relative_imports_stay_inside_rooms() -> None:
    for path in ROOMS.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.level <= 1, f"{path.name} reaches outside rooms/"


def test_the_scanner_would_notice() -> None:
    """The AST checks above can fail: feed them a module that does I/O."""
    tree = ast.parse(
        "import os\nfrom pathlib import Path\nimport asyncio.streams\n"
        "def f():\n    return open('x').read() + Path('y').read_text()\n"
    )
    assert [n for n in _imports(tree) if n.split(".")[0] in FORBIDDEN_IMPORTS] == [
        "os", "pathlib", "asyncio.streams"]
    assert sorted(_calls(tree)) == ["Path('y').read_text", "open"]
