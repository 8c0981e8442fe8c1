"""Fixtures for the example tests: each test gets a fresh copy of an example module (its own
app, hub and state), loaded from its file as ``rawstream run examples/NAME.py`` loads it."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_copies = itertools.count()

LoadExample = Callable[[str], ModuleType]


@pytest.fixture
def load_example() -> Iterator[LoadExample]:
    """``module = load_example("chat_room")``: examples/chat_room.py, freshly imported, so a
    test may change its constants (an interval, a row count) before serving ``module.app``."""
    loaded: list[str] = []

    def load(name: str) -> ModuleType:
        module_name = f"example_{name}_{next(_copies)}"
        spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # (dataclasses look their module up there)
        loaded.append(module_name)
        spec.loader.exec_module(module)
        return module

    yield load
    for module_name in loaded:
        sys.modules.pop(module_name, None)
