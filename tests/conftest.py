"""Shared fixtures: a real server on 127.0.0.1 with port 0, started in the test's nursery; a
fresh copy of an example module; a redis-server of the test's own.

``RAWSTREAM_TEST_PORTABLE_IO=1`` runs every test with ``rawstream.server.fastio.DIRECT_IO``
off: plain TCP connections then go through Trio's own ``send_all``/``receive_some``, as on a
platform whose sockets are not file descriptors (Windows).  tests/server/test_portable_io.py
runs the server tiers that way in a subprocess."""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest
import trio
from support.redis import REDIS_SERVER, RedisServer, redis_server

from rawstream import App, Config, Server, serve
from rawstream.server import fastio

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

#: Set to 1 to run every test on the portable I/O path (see the module doc).
PORTABLE_IO_ENV = "RAWSTREAM_TEST_PORTABLE_IO"
PORTABLE_IO = os.environ.get(PORTABLE_IO_ENV, "") == "1"


def pytest_report_header() -> str | None:
    if PORTABLE_IO:
        return f"rawstream: {PORTABLE_IO_ENV}=1: fastio.DIRECT_IO off (Trio's stream methods)"
    return None


@pytest.fixture(autouse=True)
def portable_io(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ``RAWSTREAM_TEST_PORTABLE_IO=1``, no connection uses direct socket I/O."""
    if PORTABLE_IO:
        monkeypatch.setattr(fastio, "DIRECT_IO", False)


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


# -- examples ----------------------------------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
_copies = itertools.count()

LoadExample = Callable[[str], ModuleType]


@pytest.fixture
def load_example() -> Iterator[LoadExample]:
    """``module = load_example("chat_room")``: examples/chat_room.py, freshly imported (its own
    app, hub and state) as ``rawstream run examples/NAME.py`` loads it, so a test may change
    its constants (an interval, a row count) or its environment before serving ``module.app``."""
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


# -- Redis -------------------------------------------------------------------------------------


@pytest.fixture
def redis_server_process(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own (persistence off), stopped (by PID) after it; fault
    tests stop, pause and restart it.  Skipped on a laptop without one (or without the
    ``coredis`` client), failed under CI=true."""
    require("coredis", "the Redis hub's client")
    require_redis_server("the test runs a real one")
    with redis_server(tmp_path / "redis") as server:
        yield server
