"""Hub channels over SSE, as httpx + httpx-sse see them: the demo's /publish and /events."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
from httpx_sse import ServerSentEvent, aconnect_sse
from support.sse import collect_events, publish

from rawstream import demo
from rawstream.hub import HistoryLimits, Hub


@pytest.fixture
def hub() -> Hub:
    return Hub(HistoryLimits(max_messages=10_000, max_bytes=64 * 1024 * 1024))


@pytest.fixture
async def base(start_server, hub: Hub) -> str:
    server = await start_server(demo.build_demo(hub))
    return f"http://127.0.0.1:{server.port}"


def data_events(events: list[ServerSentEvent]) -> list[ServerSentEvent]:
    """Events that carry data (httpx-sse also yields the id-only opening event)."""
    return [e for e in events if e.data]


async def test_publish_then_resume_with_last_event_id_header(base: str) -> None:
    """A client resuming from an id gets every later message once, then live ones."""
    async with httpx.AsyncClient() as client:
        ids = [await publish(client, base, "news", f"n{i}") for i in range(5)]
        async with trio.open_nursery() as nursery:
            received: list[ServerSentEvent] = []

            async def listen() -> None:
                received.extend(
                    await collect_events(
                        client, f"{base}/events?channel=news", 4, last_event_id=ids[1]
                    )
                )

            nursery.start_soon(listen)
            await trio.testing.wait_all_tasks_blocked()
            live = await publish(client, base, "news", "live")
    events = data_events(received)
    assert [(e.id, e.data) for e in events] == [
        (ids[2], "n2"),
        (ids[3], "n3"),
        (ids[4], "n4"),
        (live, "live"),
    ]
    opening = received[0]
    assert opening.retry == 2000 and opening.id == ids[1] and opening.data == ""


async def test_resume_with_last_event_id_query_parameter(base: str) -> None:
    """For clients that cannot set headers: ?last_event_id= does the same."""
    async with httpx.AsyncClient() as client:
        ids = [await publish(client, base, "q", f"q{i}") for i in range(3)]
        events = await collect_events(client, f"{base}/events?channel=q&last_event_id={ids[0]}", 2)
    assert [e.data for e in data_events(events)] == ["q1", "q2"]


async def test_the_opening_id_lets_a_client_resume_before_any_event(base: str) -> None:
    """A client that drops before its first event still resumes without a gap: the stream
    opened with an id-only event holding the channel's position."""
    async with httpx.AsyncClient() as client:
        await publish(client, base, "early", "old")
        opening: list[ServerSentEvent] = []
        with trio.fail_after(5):
            async with aconnect_sse(client, "GET", f"{base}/events?channel=early") as source:
                async for event in source.aiter_sse():
                    opening = [event]
                    break
        missed = await publish(client, base, "early", "while away")
        events = await collect_events(
            client, f"{base}/events?channel=early", 1, last_event_id=opening[0].id
        )
    assert [(e.id, e.data) for e in data_events(events)] == [(missed, "while away")]


async def test_unknown_id_gets_a_reset_event_then_the_history(base: str) -> None:
    async with httpx.AsyncClient() as client:
        ids = [await publish(client, base, "r", f"r{i}") for i in range(2)]
        events = await collect_events(
            client, f"{base}/events?channel=r", 3, last_event_id="not-an-id-of-ours"
        )
    reset, *rest = data_events(events)
    assert reset.event == "reset"
    assert json.loads(reset.data) == {"channel": "r", "reason": "malformed"}
    assert [(e.id, e.data) for e in rest] == [(ids[0], "r0"), (ids[1], "r1")]


async def test_several_channels_on_one_stream_resume_together(base: str) -> None:
    """?channel=a&channel=b: one connection, one Last-Event-ID that resumes both."""
    async with httpx.AsyncClient() as client:
        url = f"{base}/events?channel=a&channel=b"
        received: list[ServerSentEvent] = []

        async def listen() -> None:
            received.extend(await collect_events(client, url, 2))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(listen)
            await trio.testing.wait_all_tasks_blocked()
            await publish(client, base, "a", "a1")
            await publish(client, base, "b", "b1")
        cursor = data_events(received)[-1].id
        assert cursor.startswith("a=") and ",b=" in cursor
        await publish(client, base, "b", "b2")
        await publish(client, base, "a", "a2")
        resumed = data_events(await collect_events(client, url, 2, last_event_id=cursor))
    assert sorted(e.data for e in resumed) == ["a2", "b2"]


@pytest.mark.parametrize("query", ["channel=", "channel=a,b", "channel=" + "x" * 300])
async def test_bad_channel_names_get_400(base: str, query: str) -> None:
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{base}/events?{query}")).status_code == 400
        assert (await client.post(f"{base}/publish?{query}", content="x")).status_code == 400


async def test_publish_needs_a_channel_and_text(base: str) -> None:
    """No channel, a body that is not UTF-8, or an event type that would break the SSE framing
    (a newline in it) are refused with 400 before anything is stored."""
    async with httpx.AsyncClient() as client:
        bad_event = await client.post(f"{base}/publish?channel=c&event=a%0Ab", content="x")
        assert bad_event.status_code == 400
        assert (await client.post(f"{base}/publish", content="x")).status_code == 400
        bad_utf8 = await client.post(f"{base}/publish?channel=c", content=b"\xff\xfe")
        assert bad_utf8.status_code == 400


async def test_default_channel_is_the_ticker(start_server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "TICK_INTERVAL", 0.01)
    server = await start_server(demo.build_demo(Hub()))
    async with httpx.AsyncClient() as client:
        events = data_events(
            await collect_events(client, f"http://127.0.0.1:{server.port}/events", 3)
        )
    ticks = [json.loads(e.data)["tick"] for e in events]
    assert all(e.event == "tick" for e in events)
    assert ticks == list(range(ticks[0], ticks[0] + 3))


async def test_a_slow_subscriber_is_cut_off_and_resumes_while_others_get_everything(
    base: str, hub: Hub
) -> None:
    """One subscriber stops reading while 12.5 MiB are published: the publisher never waits,
    a reading subscriber gets every message, and the stalled one is disconnected (the default
    policy), its stream ending with retry:.  Resuming from its last id, it gets the rest:
    nothing lost, nothing twice."""
    payload = "x" * 32 * 1024
    count = 400
    async with httpx.AsyncClient(timeout=30) as client:
        fast: list[ServerSentEvent] = []
        published: list[str] = []

        async def fast_reader() -> None:
            fast.extend(await collect_events(client, f"{base}/events?channel=flood", count))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(fast_reader)
            with trio.fail_after(10):
                async with aconnect_sse(client, "GET", f"{base}/events?channel=flood") as slow:
                    events = slow.aiter_sse()
                    opening = await events.__anext__()  # then read nothing while it floods
                    await trio.testing.wait_all_tasks_blocked()
                    for _ in range(count):
                        published.append(await hub.publish("flood", payload))  # no pauses
                    got_before_cut = [e async for e in events]  # until the server ends it
        assert [e.id for e in data_events(fast)] == published

        slow_ids = [e.id for e in data_events(got_before_cut)]
        assert len(slow_ids) < count  # it was cut off ...
        assert slow_ids == published[: len(slow_ids)]  # ... after an in-order prefix
        assert got_before_cut[-1].retry is not None  # the stream ended with a retry hint
        last = slow_ids[-1] if slow_ids else opening.id
        rest = data_events(
            await collect_events(
                client,
                f"{base}/events?channel=flood",
                count - len(slow_ids),
                last_event_id=last,
            )
        )
    assert slow_ids + [e.id for e in rest] == published
