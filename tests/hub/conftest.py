"""Fixtures for the hub tests: a real redis-server per test (skipped on a laptop without one,
failed under CI=true, like every missing test dependency)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import IN_CI, require
from support.redis import REDIS_SERVER, RedisServer, redis_server


def require_redis_server() -> None:
    """Skip (on a laptop) or fail (under CI=true) without the redis-server binary."""
    if REDIS_SERVER is None:
        message = (
            "redis-server is not installed (the Redis hub tests run a real one); "
            "install it: apt-get install redis-server"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def redis_server_process(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, stopped (by PID) after it; fault tests stop,
    pause and restart it."""
    require("coredis", "the Redis hub's client")
    require_redis_server()
    with redis_server(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def redis_url(redis_server_process: RedisServer) -> str:
    """The URL of this test's redis-server."""
    return redis_server_process.url
