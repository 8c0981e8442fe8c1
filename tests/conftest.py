"""Shared fixtures: a real server on 127.0.0.1 with port 0, started in the test's nursery."""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from functools import partial
from types import ModuleType
from typing import Any

import pytest
import trio

from rawstream import App, Config, Server, serve

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(module: str, reason: str) -> ModuleType:
    """Import a test dependency: skip (on a laptop) or fail (under CI=true) if it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        message = (
            f"{module} is not installed ({reason}); install the dev extra: pip install -e '.[dev]'"
        )
        if IN_CI:
            pytest.fail(message + f" [{exc}]")
        pytest.skip(message)


StartServer = Callable[..., Coroutine[Any, Any, Server]]


@pytest.fixture
async def start_server(nursery: trio.Nursery) -> AsyncIterator[StartServer]:
    """``server = await start_server(app, **config_fields)``: serving on 127.0.0.1, port 0."""

    async def start(app: App, *, ssl_context: Any = None, **config: Any) -> Server:
        server: Server = await nursery.start(
            partial(
                serve,
                app,
                host="127.0.0.1",
                port=0,
                config=Config(**config),
                ssl_context=ssl_context,
            )
        )
        return server

    yield start
