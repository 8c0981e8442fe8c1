"""Shared fixtures: a real server on 127.0.0.1 with port 0, started in the test's nursery."""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from functools import partial
from types import ModuleType
from typing import Any, NoReturn

import pytest
import trio
from support.redis import REDIS_SERVER

from rawstream import App, Config, Server, serve

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(message: str) -> NoReturn:
    """A test dependency is missing: skip the test on a laptop, fail it under CI=true (where
    every dependency must be installed).  ``message`` says what is missing and how to install
    it."""
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing test dependency fails)")
    pytest.skip(message)


def require(module: str, reason: str) -> ModuleType:
    """Import a test dependency, or :func:`missing` if it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing(
            f"{module} is not installed ({reason}); install the dev extra: "
            f"pip install -e '.[dev]' [{exc}]"
        )


def require_redis_server(reason: str) -> None:
    """:func:`missing` unless the redis-server binary is installed."""
    if REDIS_SERVER is None:
        missing(
            f"redis-server is not installed ({reason}); install it: apt-get install redis-server"
        )


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
