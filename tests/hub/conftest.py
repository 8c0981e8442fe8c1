"""Fixtures for the hub tests: a real redis-server per test (skipped on a laptop without one,
failed under CI=true, like every missing test dependency)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require, require_redis_server
from support.redis import RedisServer, redis_server


@pytest.fixture
def redis_server_process(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, stopped (by PID) after it; fault tests stop,
    pause and restart it."""
    require("coredis", "the Redis hub's client")
    require_redis_server("the Redis hub tests run a real one")
    with redis_server(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def redis_url(redis_server_process: RedisServer) -> str:
    """The URL of this test's redis-server."""
    return redis_server_process.url
