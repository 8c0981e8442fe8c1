"""The demo on a RedisHub, served twice in-process (two workers, one Redis), reached over HTTP
the way browsers reach it: publish on one server, stream from the other, resume across them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio
from conftest import StartServer
from httpx_sse import ServerSentEvent, aconnect_sse
from support.sse import publish


@pytest.fixture
async def two_servers(start_server: StartServer, redis_url: str) -> AsyncIterator[list[str]]:
    """Base URLs of two demo servers, each with its own RedisHub on this test's Redis."""
    from rawstream.demo import build_demo
    from rawstream.hub.redis import RedisHub

    bases = []
    for _ in range(2):
        server = await start_server(build_demo(RedisHub(redis_url, block_ms=50)))
        bases.append(f"http://127.0.0.1:{server.port}")
    yield bases


async def messages(events: AsyncIterator[ServerSentEvent], n: int) -> list[tuple[str, str]]:
    """The next ``n`` events as (id, data); each must be a message (not a ``reset``)."""
    got: list[tuple[str, str]] = []
    async for event in events:
        assert event.event == "message", event
        got.append((event.id, event.data))
        if len(got) == n:
            break
    return got


async def opened(events: AsyncIterator[ServerSentEvent]) -> None:
    """The stream's opening event: no data, the subscription's cursor and a retry hint."""
    opening = await anext(events)
    assert (opening.data, opening.retry is not None) == ("", True), opening


async def test_publish_on_one_server_reaches_a_stream_on_the_other(two_servers: list[str]) -> None:
    server_a, server_b = two_servers
    with trio.fail_after(10):
        async with httpx.AsyncClient(timeout=5) as client:
            for base in two_servers:
                health = (await client.get(base + "/healthz")).json()
                assert (health["status"], health["broker"]) == ("ok", "RedisHub")
            async with aconnect_sse(client, "GET", f"{server_a}/events?channel=x") as source:
                events = source.aiter_sse()
                await opened(events)  # subscribed
                sent = await publish(client, server_b, "x", "hello from b")
                assert await messages(events, 1) == [(sent, "hello from b")]


async def test_a_client_resumes_on_the_other_server_with_exactly_what_it_missed(
    two_servers: list[str],
) -> None:
    server_a, server_b = two_servers
    with trio.fail_after(10):
        async with httpx.AsyncClient(timeout=5) as client:
            async with aconnect_sse(client, "GET", f"{server_a}/events?channel=x") as source:
                events = source.aiter_sse()
                await opened(events)
                first = await publish(client, server_a, "x", "seen")
                assert await messages(events, 1) == [(first, "seen")]
            # Disconnected.  Published meanwhile, on either server:
            missed = [
                (await publish(client, base, "x", f"missed {i}"), f"missed {i}")
                for i, base in enumerate([server_a, server_b, server_a])
            ]
            headers = {"Last-Event-ID": first}
            async with aconnect_sse(
                client, "GET", f"{server_b}/events?channel=x", headers=headers
            ) as source:
                events = source.aiter_sse()
                await opened(events)
                assert await messages(events, 3) == missed
                live = await publish(client, server_a, "x", "live")
                assert await messages(events, 1) == [(live, "live")]  # and nothing else
