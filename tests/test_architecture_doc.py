"""docs/ARCHITECTURE.md's module tree names exactly the modules and packages that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "rawstream"
DOC = ROOT / "docs" / "ARCHITECTURE.md"

#: Files a reader does not need named: every package has one, and the package's entry point.
UNNAMED = {"__init__.py", "__main__.py"}


def documented_tree() -> list[str]:
    """The paths (relative to src/rawstream, folders ending in "/") of section 1's tree."""
    text = DOC.read_text()
    section = text[text.index("## 1. ") :]
    block = re.search(r"```\nsrc/rawstream/\n(.*?)```", section, re.DOTALL)
    assert block, "section 1 has no code block starting with src/rawstream/"
    paths: list[str] = []
    folders: list[str] = []  # the folder at each depth above the current line
    for line in block.group(1).splitlines():
        indent = len(line) - len(line.lstrip(" "))
        assert indent % 2 == 0 and indent >= 2, f"odd indentation: {line!r}"
        depth = indent // 2 - 1
        name = line.split()[0]
        folders = folders[:depth]
        assert len(folders) == depth, f"{name} is nested under no folder"
        path = "".join(folders) + name
        paths.append(path)
        if name.endswith("/"):
            folders.append(name)
    return paths


def existing_tree() -> set[str]:
    """The Python modules and packages under src/rawstream (relative, folders with "/")."""
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if "__pycache__" in relative.parts:
            continue
        for parent in relative.parents:
            if parent != Path("."):
                found.add(parent.as_posix() + "/")
        if relative.name not in UNNAMED:
            found.add(relative.as_posix())
    return found


def test_module_tree_names_every_module_once() -> None:
    """Section 1 lists each module and package of src/rawstream exactly once, and nothing
    that does not exist."""
    documented = documented_tree()
    repeated = sorted({p for p in documented if documented.count(p) > 1})
    assert repeated == [], f"named more than once: {repeated}"
    existing = existing_tree()
    assert sorted(existing - set(documented)) == [], "modules missing from the tree"
    assert sorted(set(documented) - existing) == [], "the tree names files that do not exist"
