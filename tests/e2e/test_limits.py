"""Connection limits (server-wide 503, per client address 429, refusals beyond their bound
closed at once), the WebSocket message size limit as the websockets client sees it,
TCP_NODELAY, and the CLI loading an app from a file."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections import Counter

import httpx
import pytest
import trio
from httpx_sse import aconnect_sse
from support.cli import ROOT, start_cli, stop_process
from support.flood import hold, holding_app, status_or_closed
from support.leaks import wait_until_closed
from support.rawhttp import exchange, status_of
from support.testapp import Probes, build_app
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from rawstream import Server
from rawstream.server.server import client_key


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


def from_address(host: str) -> httpx.AsyncClient:
    """An httpx client whose connections come from ``host`` (a 127.0.0.0/8 address)."""
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=host))


async def test_per_client_cap_gets_429_while_other_clients_are_served(start_server) -> None:
    """With max_connections_per_client=2 and two streams open from 127.0.0.1, its next
    connection gets 429 + Retry-After while 127.0.0.2 is served; a freed slot lets 127.0.0.1
    in again, and the per-address table is empty once all have closed."""
    server: Server = await start_server(build_app(Probes()), max_connections_per_client=2)
    base = f"http://127.0.0.1:{server.port}"
    async with (
        httpx.AsyncClient() as first,
        aconnect_sse(first, "GET", base + "/sse/forever") as kept,
    ):
        await kept.aiter_sse().__anext__()
        async with (
            httpx.AsyncClient() as second,
            aconnect_sse(second, "GET", base + "/sse/forever") as freed,
        ):
            await freed.aiter_sse().__anext__()
            async with httpx.AsyncClient() as third:
                refused = await third.get(base + "/healthz")
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == "1"
            async with from_address("127.0.0.2") as other:
                assert (await other.get(base + "/healthz")).status_code == 200
        with trio.fail_after(5):  # the server sees the second stream and 127.0.0.2 leave
            while len(server.connections) > 1:  # noqa: ASYNC110 (server-side state)
                await trio.sleep(0.01)
        async with httpx.AsyncClient() as again:
            assert (await again.get(base + "/healthz")).status_code == 200
    await wait_until_closed(server)
    assert server._per_client == {}
    assert server.connections_rejected == Counter(per_client=1)


async def test_refusals_beyond_their_bound_are_closed_at_once(start_server) -> None:
    """At max_connections=1, one refused connection still waiting for its request head holds
    the only refusal slot (refusals at once are bounded by max_connections): the next
    connection is closed with no answer.  Once the slots free up, requests are served."""
    release = trio.Event()
    server: Server = await start_server(holding_app(release), max_connections=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(hold, server.port, release)
        silent = await trio.open_tcp_stream("127.0.0.1", server.port)
        with trio.fail_after(5):
            while not server.connections_rejected["overloaded"]:  # noqa: ASYNC110
                await trio.sleep(0.01)
        assert await status_or_closed(server.port) is None
        await silent.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await silent.receive_some(65536)  # its refusal, once it asks
        await silent.aclose()
        release.set()
    assert status_of(answer) == 503
    await wait_until_closed(server)
    assert await status_or_closed(server.port) == 200
    assert server.connections_rejected == Counter(overloaded=1, closed_at_once=1)
    assert server.connections_accepted == 4


@pytest.mark.parametrize(("size", "code"), [(1000, None), (1001, 1009)], ids=["at", "over"])
async def test_websocket_message_size_limit_seen_by_websockets(
    start_server, size: int, code: int | None
) -> None:
    """A message of ws_max_message_bytes is echoed; one byte more gets close 1009, as the
    websockets client (with its default compression offer) reports it."""
    server: Server = await start_server(build_app(Probes()), ws_max_message_bytes=1000)

    def talk() -> int | None:
        with connect(f"ws://127.0.0.1:{server.port}/ws/echo") as ws:
            ws.send(b"x" * size)
            try:
                assert ws.recv(timeout=10) == b"x" * size
            except ConnectionClosed as closed:
                assert closed.rcvd is not None, "closed without a close frame"
                return closed.rcvd.code
        return None

    assert await trio.to_thread.run_sync(talk) == code


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


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
    ],
)
def test_the_cap_counts_ipv4_addresses_and_ipv6_networks(address: str, key: str) -> None:
    """One IPv6 client usually holds a whole /64, so the cap counts by /64 (an IPv4-mapped
    address counts as its IPv4 address)."""
    assert client_key(address) == key
