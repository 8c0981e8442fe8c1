"""Connection limit, TCP_NODELAY, and the CLI loading an app from a file."""

from __future__ import annotations

import socket
import subprocess
import sys

import httpx
import trio
from httpx_sse import aconnect_sse
from support.cli import ROOT, start_cli, stop_process
from support.rawhttp import exchange, status_of
from support.testapp import Probes, build_app

from rawstream import Server


async def test_connections_beyond_the_limit_get_503(start_server) -> None:
    """With max_connections=2 and two streams open, the next request gets 503 + Retry-After."""
    server: Server = await start_server(build_app(Probes()), max_connections=2)
    base = f"http://127.0.0.1:{server.port}"
    async with (
        httpx.AsyncClient() as first,
        httpx.AsyncClient() as second,
        aconnect_sse(first, "GET", base + "/sse/forever") as a,
        aconnect_sse(second, "GET", base + "/sse/forever") as b,
    ):
        await a.aiter_sse().__anext__()
        await b.aiter_sse().__anext__()
        raw = await exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(raw) == 503
        assert b"retry-after: 1" in raw.lower()
    with trio.fail_after(5):
        while server.connections:  # noqa: ASYNC110 (polls server state; no event to wait on)
            await trio.sleep(0.01)
    async with httpx.AsyncClient() as client:
        assert (await client.get(base + "/healthz")).status_code == 200


async def test_tcp_nodelay_on_accepted_sockets(start_server) -> None:
    """Every accepted socket has TCP_NODELAY set."""
    server: Server = await start_server(build_app(Probes()))
    async with (
        httpx.AsyncClient() as client,
        aconnect_sse(client, "GET", f"http://127.0.0.1:{server.port}/sse/forever") as source,
    ):
        await source.aiter_sse().__anext__()
        (conn,) = server.connections
        sock = conn.stream.socket  # type: ignore[attr-defined]
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


async def test_cli_runs_an_app_from_a_file() -> None:
    """`rawstream run examples/hello.py:app` serves that file's App."""
    process, port = await trio.to_thread.run_sync(start_cli, "run", "examples/hello.py:app")
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/")
        assert response.status_code == 200
        assert "hello" in response.text.lower()
    finally:
        code = await trio.to_thread.run_sync(stop_process, process)
    assert code == 0


def test_cli_rejects_a_missing_app() -> None:
    """A spec naming no App exits with a clear message."""
    result = subprocess.run(
        [sys.executable, "-m", "rawstream", "run", "examples/hello.py:nothing"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert result.returncode != 0
    assert "is not a rawstream.App" in result.stderr
