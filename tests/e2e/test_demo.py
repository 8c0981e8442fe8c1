"""The demo's routes, as a user reaches them (the demo app in-process, real sockets)."""

from __future__ import annotations

import os

import httpx
import pytest
from httpx_sse import aconnect_sse

from rawstream.demo import build_demo


@pytest.fixture
async def base(start_server) -> str:
    server = await start_server(build_demo())
    return f"http://127.0.0.1:{server.port}"


async def test_stream_sends_n_events_of_s_bytes(base: str) -> None:
    """/stream?n=50&size=300: 50 events, ids 0..49, 300 bytes of data each."""
    async with (
        httpx.AsyncClient() as client,
        aconnect_sse(client, "GET", base + "/stream?n=50&size=300") as source,
    ):
        events = [(e.id, len(e.data)) async for e in source.aiter_sse()]
    assert events == [(str(i), 300) for i in range(50)]


@pytest.mark.parametrize("query", ["n=x", "size=-1", "size=99999999", "n=-5"])
async def test_stream_rejects_bad_parameters(base: str, query: str) -> None:
    """Bad n or size get 400 before the stream opens."""
    async with httpx.AsyncClient() as client:
        response = await client.get(base + "/stream?" + query)
    assert response.status_code == 400


async def test_healthz_reports_the_process_and_broker(base: str) -> None:
    """/healthz: ok, this process's pid, and which hub serves the channels."""
    async with httpx.AsyncClient() as client:
        health = (await client.get(base + "/healthz")).json()
    assert health == {"status": "ok", "pid": os.getpid(), "broker": "Hub"}


async def test_server_statistics_count_traffic(start_server) -> None:
    """Server statistics: open connections by phase while streaming, byte totals after."""
    server = await start_server(build_demo())
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient() as client:
        async with aconnect_sse(client, "GET", base + "/stream?n=0&size=100") as source:
            async for _ in source.aiter_sse():
                break
            during = server.statistics()
        body = (await client.get(base + "/stream?n=100&size=100")).content
    assert during.connections == 1
    assert during.connections_by_phase == {"stream": 1}
    after = server.statistics()
    assert after.bytes_sent > len(body) > 100 * 100
    assert after.bytes_received > 0
