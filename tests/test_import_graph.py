"""Imports run in one direction: no module circle, and each unit imports only those below it.

Every import of every module under src/rawstream counts, read with ``ast``: at module level,
inside functions, and under ``if TYPE_CHECKING:`` alike (a reader follows them all).  A *unit*
is a subpackage (``core``, ``server``, ...) or a top-level module (``app``, ``request``, ...);
``rawstream`` is the package's own ``__init__``.  :data:`ALLOWED` is the layering, as
docs/ARCHITECTURE.md section 1 draws it: change it only with the document.
"""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import rawstream

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "rawstream"

_BELOW_THE_SERVER = {"core", "_version", "pacing", "policy", "cors", "logs", "request", "response"}

#: Each unit, and the units it may import (bottom of the layering first).
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "_version": set(),
    "pacing": set(),
    "policy": set(),
    "logs": set(),
    "cors": {"core"},
    "response": {"core"},
    "request": {"core"},
    "app": {"core", "cors", "policy", "request", "response"},
    "server": _BELOW_THE_SERVER | {"app"},
    "client": {"core"},
    "hub": _BELOW_THE_SERVER | {"app", "server"},
    "llm": {"core", "request", "response", "app", "client", "server", "hub"},
    "metrics": _BELOW_THE_SERVER | {"app", "server", "hub"},
    "demo": _BELOW_THE_SERVER | {"app", "server", "hub", "llm", "metrics", "client", "rawstream"},
    "cli": _BELOW_THE_SERVER | {"app", "server", "hub", "llm", "metrics", "demo"},
    "__main__": {"cli"},
    "rawstream": {"_version", "app", "core", "cors", "policy", "request", "response", "server"},
}


def module_name(path: Path) -> str:
    """``rawstream.server.sse`` for src/rawstream/server/sse.py (a package: its __init__)."""
    parts = ["rawstream", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The rawstream modules ``path`` imports (``from . import x`` is module x if it exists)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {module for module in found if module in known and module != name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(path, set(known)) for name, path in known.items()}


def unit(module: str) -> str:
    """The unit of a module: its subpackage or top-level module (the package: rawstream)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "rawstream"


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_between_modules() -> None:
    """No two modules of rawstream import each other, directly or through others."""
    assert cycles(graph()) == []


def test_units_import_only_what_the_layering_allows() -> None:
    """Each import between units is one the layering allows; every unit is in the table."""
    edges = graph()
    units = {unit(module) for module in edges}
    assert units == set(ALLOWED), "a unit was added or removed: place it in ALLOWED"
    forbidden = sorted(
        f"{importer} -> {imported}"
        for importer, targets in edges.items()
        for imported in targets
        if unit(imported) != unit(importer) and unit(imported) not in ALLOWED[unit(importer)]
    )
    assert forbidden == []


def test_the_layering_runs_one_way() -> None:
    """The allowed graph itself has no circle: the layers are an order."""
    assert cycles(ALLOWED) == []


def test_version_is_written_once() -> None:
    """The package's version is the installed distribution's."""
    assert rawstream.__version__ == importlib.metadata.version("rawstream")


def test_subpackages_are_attributes_of_the_package() -> None:
    """``rawstream.server`` and the like work after ``import rawstream``, as they did when
    the package imported everything eagerly; an unknown name is an AttributeError."""
    assert rawstream.server.Server is rawstream.Server
    assert rawstream.core.http.HTTPConnection.__name__ == "HTTPConnection"
    try:
        rawstream.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("an unknown name did not raise AttributeError")
