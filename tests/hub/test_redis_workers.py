"""`rawstream demo --workers 2 --broker redis://...`: real processes, a real redis-server, and
httpx + httpx-sse clients pinned to chosen workers (a keep-alive connection that first asked
/healthz for its worker's pid)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
import trio
from conftest import require
from httpx_sse import aconnect_sse
from support.cli import start_cli, stop_process
from support.rawhttp import free_port


@pytest.fixture
def demo_port(redis_url: str) -> Iterator[int]:
    """`rawstream demo --workers 2 --broker URL` on a free port; stopped after the test
    (SIGTERM to the supervisor's PID, which stops its workers; SIGKILL if it has not exited
    within 20 s)."""
    process, port = start_cli("demo", "--workers", "2", "--broker", redis_url)
    try:
        yield port
    finally:
        stop_process(process, timeout=20)


@asynccontextmanager
async def client_on_worker(
    base: str,
    avoid: set[int] = frozenset(),  # type: ignore[assignment]
) -> AsyncIterator[tuple[httpx.AsyncClient, int]]:
    """A client with one kept-alive connection, to a worker whose pid is not in ``avoid``."""
    with trio.fail_after(15):
        while True:
            client = httpx.AsyncClient(limits=httpx.Limits(max_connections=1), timeout=10)
            try:
                pid = int((await client.get(base + "/healthz")).json()["pid"])
            except httpx.TransportError:
                await client.aclose()
                await trio.sleep(0.05)  # a worker restarting: try again
                continue
            if pid not in avoid:
                break
            await client.aclose()
    try:
        yield client, pid
    finally:
        await client.aclose()


async def publish(base: str, channel: str, text: str) -> str:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(f"{base}/publish?channel={channel}", content=text)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def test_a_publish_through_one_worker_reaches_subscribers_on_both(demo_port: int) -> None:
    base = f"http://127.0.0.1:{demo_port}"
    received: dict[int, list[str]] = {}
    ready = trio.Semaphore(0)

    async def subscribe(avoid: set[int], count: int) -> None:
        async with client_on_worker(base, avoid) as (client, pid):
            avoid.add(pid)
            got = received.setdefault(pid, [])
            async with aconnect_sse(client, "GET", base + "/events?channel=both") as source:
                events = source.aiter_sse()
                opening = await anext(events)  # sent once the subscription is open
                assert (opening.data, opening.retry is not None) == ("", True), opening
                ready.release()
                async for event in events:
                    if event.data:
                        got.append(event.data)
                        if len(got) == count:
                            return

    taken: set[int] = set()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(subscribe, taken, 20)
            await ready.acquire()
            nursery.start_soon(subscribe, taken, 20)
            await ready.acquire()  # both streams subscribed (their opening events are in)
            for i in range(20):
                await publish(base, "both", f"m{i}")
    assert len(received) == 2  # two different worker processes
    for got in received.values():
        assert got == [f"m{i}" for i in range(20)]


async def test_a_killed_worker_s_client_resumes_on_the_other_exactly_once(
    demo_port: int,
) -> None:
    """SIGKILL the worker serving a stream mid-way; the client reconnects with Last-Event-ID
    to another worker and gets every message exactly once, in order."""
    base = f"http://127.0.0.1:{demo_port}"
    published: list[str] = []
    got: list[tuple[str, str]] = []
    total = 40
    first_part = trio.Event()

    async def publisher(victim: int) -> None:
        # Through another worker, so no publish is in flight on the one that dies.
        async with client_on_worker(base, {victim}) as (client, _):
            for i in range(total):
                response = await client.post(f"{base}/publish?channel=kill", content=f"k{i}")
                assert response.status_code == 200, response.text
                published.append(str(response.json()["id"]))
                if i == 14:
                    await first_part.wait()  # the victim has seen some: now kill it
                await trio.sleep(0.02)

    async with client_on_worker(base) as (client, victim):
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                async with aconnect_sse(client, "GET", base + "/events?channel=kill") as source:
                    events = source.aiter_sse()
                    last_id = (await events.__anext__()).id  # the opening id
                    nursery.start_soon(publisher, victim)
                    try:
                        async for event in events:
                            if event.data:
                                got.append((event.id, event.data))
                                last_id = event.id
                            if len(got) == 10:
                                os.kill(victim, signal.SIGKILL)
                                first_part.set()
                    except httpx.HTTPError:
                        pass  # the worker died under the stream
                assert len(got) >= 10
                async with client_on_worker(base, {victim}) as (other, _):
                    headers = {"Last-Event-ID": last_id}
                    async with aconnect_sse(
                        other, "GET", base + "/events?channel=kill", headers=headers
                    ) as source:
                        async for event in source.aiter_sse():
                            if event.data:
                                got.append((event.id, event.data))
                                if len(got) == total:
                                    break
    assert [data for _, data in got] == [f"k{i}" for i in range(total)]
    assert [message_id for message_id, _ in got] == published


async def test_shared_ticker_ticks_once_a_second_not_once_per_worker(demo_port: int) -> None:
    """With a shared broker only worker 1 runs the demo's ticker: tick numbers do not repeat."""
    base = f"http://127.0.0.1:{demo_port}"
    ticks: list[int] = []
    with trio.fail_after(15):
        async with (
            httpx.AsyncClient(timeout=10) as client,
            aconnect_sse(client, "GET", base + "/events") as source,
        ):
            async for event in source.aiter_sse():
                if event.event == "tick":
                    ticks.append(json.loads(event.data)["tick"])
                    if len(ticks) == 3:
                        break
    assert ticks == sorted(set(ticks))


def test_redis_unreachable_at_start_exits_1_with_a_clear_message() -> None:
    """No Redis at the URL: the server does not start, says why, and exits non-zero."""
    require("coredis", "the Redis hub's client")
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = subprocess.run(
        [sys.executable, "-m", "rawstream", "demo", "--port", "0", "--broker", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "rawstream: cannot start:" in result.stderr
    assert "listening on" not in result.stderr
