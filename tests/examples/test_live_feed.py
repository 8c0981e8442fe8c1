"""examples/live_feed.py: ticks reach every client, and a client resumes without loss."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import trio
from conftest import LoadExample, require, require_redis_server
from httpx_sse import ServerSentEvent
from support.cli import start_cli, stop_process
from support.redis import redis_server
from support.sse import collect_events


@pytest.fixture
def feed(load_example: LoadExample) -> ModuleType:
    module = load_example("live_feed")
    module.INTERVAL = 0.005
    return module


@pytest.fixture
async def base(start_server, feed: ModuleType) -> str:
    server = await start_server(feed.app)
    return f"http://127.0.0.1:{server.port}/prices"


async def ticks(
    client: httpx.AsyncClient, url: str, count: int, last_event_id: str | None = None
) -> list[ServerSentEvent]:
    """The first ``count`` tick events of ``url`` (from ``last_event_id`` if given)."""

    def is_tick(event: ServerSentEvent) -> bool:
        return event.event == "tick"

    events = await collect_events(client, url, count, counted=is_tick, last_event_id=last_event_id)
    return [event for event in events if is_tick(event)]


def seqs(events: list[ServerSentEvent]) -> dict[str, list[int]]:
    by_symbol: dict[str, list[int]] = defaultdict(list)
    for event in events:
        tick = json.loads(event.data)
        by_symbol[tick["symbol"]].append(tick["seq"])
    return dict(by_symbol)


async def test_one_symbol_resumes_from_last_event_id_without_loss(base: str) -> None:
    """Disconnect, let ticks go by (seen by another client), resume: the next seq follows."""
    async with httpx.AsyncClient() as client:
        first = await ticks(client, f"{base}?channel=ACME", 5)
        # Another client watches until 5 more ticks went out while we were away.
        await ticks(client, f"{base}?channel=ACME", 5)
        resumed = await ticks(client, f"{base}?channel=ACME", 10, first[-1].id)
    start = seqs(first)["ACME"][0]
    assert seqs(first)["ACME"] == list(range(start, start + 5))
    assert seqs(resumed)["ACME"] == list(range(start + 5, start + 15))
    assert all(json.loads(e.data)["price"] > 0 for e in first + resumed)


async def test_every_symbol_on_one_stream_resumes_with_one_cursor(base: str) -> None:
    """The default stream carries every symbol; its event id resumes all of them."""
    async with httpx.AsyncClient() as client:
        first = await ticks(client, base, 9)
        await ticks(client, f"{base}?channel=GLOBEX", 6)  # time passes, measured in ticks
        resumed = await ticks(client, base, 30, first[-1].id)
    assert "ACME=" in first[-1].id and "INITECH=" in first[-1].id
    before, after = seqs(first), seqs(resumed)
    assert set(before) == set(after) == {"ACME", "GLOBEX", "INITECH"}
    for symbol, numbers in after.items():
        follows = before[symbol][-1] + 1
        assert numbers == list(range(follows, follows + len(numbers))), symbol


async def test_two_clients_get_the_same_ticks(base: str) -> None:
    """Fan-out: concurrent clients see identical events (same ids, same data)."""
    results: list[list[ServerSentEvent]] = []
    async with httpx.AsyncClient() as client:
        start = (await ticks(client, f"{base}?channel=INITECH", 1))[0].id

        async def watch() -> None:
            results.append(await ticks(client, f"{base}?channel=INITECH", 8, start))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            nursery.start_soon(watch)
    assert [(e.id, e.data) for e in results[0]] == [(e.id, e.data) for e in results[1]]


async def test_an_unknown_symbol_is_404(base: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{base}?channel=ACME&channel=NOPE")
    assert response.status_code == 404
    assert "NOPE" in response.text


async def test_workers_sharing_redis_tick_once(tmp_path: Path) -> None:
    """``--workers 2 --broker redis://``: the channels are shared, and only worker 1 runs the
    ticker, so each tick number reaches a client once (with two tickers every number would
    come twice, one from each worker, as soon as the second worker is up)."""
    require("coredis", "the Redis hub's client")
    require_redis_server("the two workers share their channels through a real one")
    with redis_server(tmp_path / "redis") as redis:
        process, port = start_cli(
            "run", "examples/live_feed.py", "--workers", "2", "--broker", redis.url
        )
        try:
            async with httpx.AsyncClient() as client:
                url = f"http://127.0.0.1:{port}/prices?channel=ACME"
                numbers = seqs(await ticks(client, url, 12))["ACME"]
        finally:
            stop_process(process, timeout=15)  # SIGTERM: the supervisor stops its workers
    assert numbers == list(range(numbers[0], numbers[0] + 12))
