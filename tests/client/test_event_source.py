"""EventSource: reconnection, backoff, Last-Event-ID and the spec's stopping rules, against a
real rawstream server (and a raw server for streams that misbehave on purpose).

Delays are tested on the virtual clock (``autojump_clock``): the sockets are real, but time
only moves when every task waits, so the gaps between reconnections are exactly the delays
the client chose.
"""

from __future__ import annotations

import itertools
import random

import pytest
import trio
import trio.testing
from support.rawhttp import free_port
from support.rawserver import RawHandler, RawServer, response_head

from rawstream import App, Config, Server, serve
from rawstream.client import (
    EventSource,
    ServerSentEvent,
    SSEConnectionError,
    SSEEventTooLargeError,
    SSEResponseError,
)
from rawstream.hub import HistoryLimits, Hub, sse_channels

from .conftest import FixedRandom, Seen


async def take(source: EventSource, count: int) -> list[ServerSentEvent]:
    """The next ``count`` events of ``source``."""
    events: list[ServerSentEvent] = []
    async for event in source:
        events.append(event)
        if len(events) == count:
            break
    return events


def gaps(times: list[float]) -> list[float]:
    return [round(later - earlier, 6) for earlier, later in itertools.pairwise(times)]


async def test_reconnects_and_resumes_with_last_event_id(
    base: str, seen: Seen, autojump_clock: trio.testing.MockClock
) -> None:
    """When the server ends the stream, the client reconnects, sending Last-Event-ID."""
    async with EventSource(base + "/batches", random=FixedRandom(0.0)) as source:
        events = await take(source, 6)
        assert source.last_event_id == "6"
        assert source.reconnects == 2
    assert [e.data for e in events] == [f"event {i}" for i in range(1, 7)]
    assert seen.last_event_ids == [None, "2", "4"]
    assert gaps(seen.times) == [3.0, 3.0]  # the default reconnection time


async def test_server_retry_is_honoured(
    base: str, seen: Seen, autojump_clock: trio.testing.MockClock
) -> None:
    """``retry: 5000`` makes the reconnection time 5 s, the floor of every delay."""
    async with EventSource(base + "/batches?retry=5000", random=FixedRandom(0.0)) as source:
        await take(source, 6)
        assert source.retry == 5.0
    assert gaps(seen.times) == [5.0, 5.0]


async def test_jitter_after_a_healthy_stream_is_at_most_double(
    base: str, seen: Seen, autojump_clock: trio.testing.MockClock
) -> None:
    """After a stream that delivered events, the delay is drawn from [retry, 2 * retry]."""
    async with EventSource(base + "/batches?retry=1000", random=FixedRandom(1.0)) as source:
        await take(source, 6)
    assert gaps(seen.times) == [2.0, 2.0]


async def test_initial_last_event_id(base: str, seen: Seen) -> None:
    """``last_event_id`` is sent on the first connection."""
    async with EventSource(base + "/count?n=2", last_event_id="40") as source:
        events = await take(source, 2)
    assert [e.id for e in events] == ["41", "42"]
    assert seen.last_event_ids == ["40"]


def closes_at_once(events_on: frozenset[int] = frozenset()) -> RawHandler:
    """A raw handler: an event-stream head, then the end; connection k (from 1) in
    ``events_on`` sends one event first."""
    count = 0

    async def handler(stream: trio.SocketStream, head: bytes) -> None:
        nonlocal count
        count += 1
        body = f"id: {count}\ndata: on connection {count}\n\n" if count in events_on else ""
        await stream.send_all(response_head() + body.encode())

    return handler


async def test_backoff_doubles_up_to_the_cap(
    raw_server, autojump_clock: trio.testing.MockClock
) -> None:
    """Streams that end without an event are failures: the window doubles up to max_backoff."""
    server: RawServer = await raw_server(closes_at_once())
    source = EventSource(
        server.url, retry=1.0, max_backoff=10.0, max_reconnects=5, random=FixedRandom(1.0)
    )
    with pytest.raises(SSEConnectionError, match="gave up after 5"):
        async with source:
            async for _ in source:
                pytest.fail("no event was sent")
    assert len(server.times) == 6
    assert gaps(server.times) == [4.0, 8.0, 10.0, 10.0, 10.0]


async def test_a_healthy_stream_resets_the_backoff(
    raw_server, autojump_clock: trio.testing.MockClock
) -> None:
    """A stream that delivered an event starts the backoff again from the reconnection time."""
    server: RawServer = await raw_server(closes_at_once(frozenset({3})))
    source = EventSource(
        server.url, retry=1.0, max_backoff=100.0, max_reconnects=4, random=FixedRandom(1.0)
    )
    async with source:
        events = []
        with pytest.raises(SSEConnectionError):
            async for event in source:
                events.append(event)
    assert [e.data for e in events] == ["on connection 3"]
    assert gaps(server.times) == [4.0, 8.0, 2.0, 4.0]
    assert server.heads[3].count(b"last-event-id: 3\r\n") == 1


async def test_jitter_stays_in_the_window(
    raw_server, autojump_clock: trio.testing.MockClock
) -> None:
    """With real jitter, every delay lies in [retry, min(cap, retry * 2 ** (n + 1))]."""
    server: RawServer = await raw_server(closes_at_once())
    source = EventSource(
        server.url, retry=2.0, max_backoff=20.0, max_reconnects=8, random=random.Random(5)
    )
    with pytest.raises(SSEConnectionError):
        async with source:
            await take(source, 1)
    delays = gaps(server.times)
    assert len(delays) == 8
    windows = [(2.0, min(20.0, 2.0 * 2 ** (n + 1))) for n in range(1, 9)]
    assert all(low <= d <= high for d, (low, high) in zip(delays, windows, strict=True))
    assert len(set(delays)) == len(delays)  # jittered, not a fixed schedule


async def test_connection_failures_are_retried(autojump_clock: trio.testing.MockClock) -> None:
    """Nobody listening: the client keeps trying, then gives up after max_reconnects."""
    start = trio.current_time()
    url = f"http://127.0.0.1:{free_port()}/"
    source = EventSource(url, max_reconnects=3, random=FixedRandom(0.0))
    with pytest.raises(SSEConnectionError, match="gave up after 3") as caught:
        async with source:
            await take(source, 1)
    assert source.reconnects == 3
    assert isinstance(caught.value.__cause__, SSEConnectionError)  # the last failure
    assert trio.current_time() - start == pytest.approx(9.0)


async def test_204_ends_iteration(base: str, seen: Seen, autojump_clock) -> None:
    """A 204 on a reconnection ends the iteration; nothing more is requested."""
    async with EventSource(base + "/batches?until=4", random=FixedRandom(0.0)) as source:
        events = [event async for event in source]
        assert [event async for event in source] == []
    assert [e.id for e in events] == ["1", "2", "3", "4"]
    assert seen.last_event_ids == [None, "2", "4"]


@pytest.mark.parametrize("path", ["/missing-sometimes?status=404", "/missing-sometimes?status=500"])
async def test_error_status_raises_without_reconnecting(base: str, seen: Seen, path: str) -> None:
    """404 and 500 fail the connection: SSEResponseError, and no second request."""
    with pytest.raises(SSEResponseError) as caught:
        async with EventSource(base + path) as source:
            await take(source, 1)
    assert caught.value.status == int(path[-3:])
    assert len(seen.requests) == 1


async def test_wrong_content_type_raises_without_reconnecting(base: str, seen: Seen) -> None:
    """A text/html 200 fails the connection: SSEResponseError, and no second request."""
    with pytest.raises(SSEResponseError) as caught:
        async with EventSource(base + "/page") as source:
            await take(source, 1)
    assert caught.value.status == 200 and b"not a stream" in caught.value.body
    assert len(seen.requests) == 1


async def test_an_error_after_reconnecting_still_stops(
    raw_server, autojump_clock: trio.testing.MockClock
) -> None:
    """A refusal on a reconnection (the server went into maintenance) raises too."""
    count = 0

    async def then_refuse(stream: trio.SocketStream, head: bytes) -> None:
        nonlocal count
        count += 1
        if count == 1:
            await stream.send_all(response_head() + b"id: 1\ndata: hello\n\n")
        else:
            await stream.send_all(response_head("text/plain", "503 Service Unavailable"))

    server: RawServer = await raw_server(then_refuse)
    async with EventSource(server.url) as source:
        assert [e.data for e in await take(source, 1)] == ["hello"]
        with pytest.raises(SSEResponseError) as caught:
            await take(source, 1)
    assert caught.value.status == 503
    assert len(server.heads) == 2


async def test_leaving_the_block_cancels_the_server_handler(base: str, seen: Seen) -> None:
    """Leaving the async with closes the connection: the handler is cancelled at once."""
    async with EventSource(base + "/forever") as source:
        await take(source, 3)
        assert source.connected
    assert not source.connected
    with trio.fail_after(5):
        await seen.handler_done.wait()
    assert seen.handler_cancelled


async def test_cancelling_a_wait_keeps_the_stream(
    base: str, seen: Seen, autojump_clock: trio.testing.MockClock
) -> None:
    """A timeout in the middle of a wait for an event (the server sends one every 10 ms)
    loses nothing: iteration carries on with the very next event."""
    async with EventSource(base + "/forever") as source:
        assert [e.id for e in await take(source, 1)] == ["1"]
        with trio.move_on_after(0.005) as scope:  # event 2 comes at 0.01 s
            await take(source, 1)
        assert scope.cancelled_caught  # cancelled mid-read: nothing was returned
        events = await take(source, 2)
    assert [e.id for e in events] == ["2", "3"]
    assert len(seen.requests) == 1


async def test_a_buffered_event_is_not_taken_by_a_cancelled_call(raw_server) -> None:
    """Events that arrived in one read are buffered; asking for one under a cancelled scope
    is a checkpoint that raises Cancelled without consuming it (no event is lost)."""

    async def four_at_once(stream: trio.SocketStream, head: bytes) -> None:
        body = b"".join(b"id: %d\ndata: e%d\n\n" % (i, i) for i in range(1, 5))
        await stream.send_all(response_head() + body)
        await trio.sleep_forever()

    server: RawServer = await raw_server(four_at_once)
    async with EventSource(server.url) as source:
        assert [e.id for e in await take(source, 1)] == ["1"]
        with trio.CancelScope() as scope:
            scope.cancel()
            await take(source, 1)
        assert scope.cancelled_caught
        assert [e.id for e in await take(source, 3)] == ["2", "3", "4"]


async def test_event_over_the_limit_raises(base: str) -> None:
    """An event larger than max_event_bytes raises the typed error, without reconnecting."""
    async with EventSource(base + "/big?size=100000", max_event_bytes=65536) as source:
        with pytest.raises(SSEEventTooLargeError):
            await take(source, 2)
        assert not source.connected
        assert [event async for event in source] == []


async def test_silent_stream_is_reconnected_after_read_timeout(
    raw_server, autojump_clock: trio.testing.MockClock
) -> None:
    """A stream silent for read_timeout counts as broken: the client reconnects."""

    async def silent(stream: trio.SocketStream, head: bytes) -> None:
        await stream.send_all(response_head() + b"id: 1\ndata: then nothing\n\n")
        await trio.sleep_forever()

    server: RawServer = await raw_server(silent)
    async with EventSource(server.url, read_timeout=60, random=FixedRandom(0.0)) as source:
        await take(source, 2)
    assert gaps(server.times) == [63.0]  # 60 s of silence, then the 3 s reconnection time
    assert b"last-event-id: 1\r\n" in server.heads[1]


async def test_hub_channel_resumes_exactly_once_across_a_restart(nursery: trio.Nursery) -> None:
    """The server restarts while messages keep being published: each arrives exactly once."""
    hub = Hub(HistoryLimits(max_messages=10_000))
    app = App()
    sse_channels(app, "/events", hub, retry_ms=20)
    config = Config(shutdown_retry_ms=(10, 20), drain_timeout=1)
    stopped = trio.Event()

    async def run_server(port: int, *, task_status: trio.TaskStatus[Server]) -> None:
        try:
            await serve(app, host="127.0.0.1", port=port, config=config, task_status=task_status)
        finally:
            stopped.set()

    first: Server = await nursery.start(run_server, 0)
    published: list[str] = []
    received: list[ServerSentEvent] = []

    async def publish(count: int) -> None:
        for _ in range(count):
            published.append(await hub.publish("news", f"m{len(published)}"))
            await trio.sleep(0.002)

    url = f"http://127.0.0.1:{first.port}/events?channel=news"
    await publish(1)  # the client resumes after this one, so it misses nothing published later
    with trio.fail_after(20):
        async with EventSource(
            url, last_event_id=published[0], retry=0.02, max_backoff=0.2
        ) as source:
            async with trio.open_nursery() as publishers:
                publishers.start_soon(publish, 60)
                received += await take(source, 5)
                first.shutdown()  # streams end with a retry: hint; the client reconnects
                await stopped.wait()
                second: Server = await nursery.start(run_server, first.port)
            while len(received) < len(published) - 1:
                received += await take(source, 1)
            assert source.reconnects >= 1
        second.shutdown()
    assert len(published) == 61
    assert [e.id for e in received] == published[1:]
    assert [e.data for e in received] == [f"m{i}" for i in range(1, 61)]


def test_a_new_event_source_does_nothing_until_iterated() -> None:
    """Constructing an EventSource opens nothing (no socket, no task)."""
    source = EventSource("http://127.0.0.1:9/never")
    assert not source.connected and source.reconnects == 0 and source.last_event_id == ""
    assert source.retry == 3.0


async def test_aclose_from_another_task_ends_the_iteration(base: str, seen: Seen) -> None:
    """aclose() while another task waits for an event: that iteration ends (no exception),
    and the server's handler is cancelled."""
    received: list[ServerSentEvent] = []
    enough = trio.Event()
    async with EventSource(base + "/forever") as source, trio.open_nursery() as nursery:

        async def close_after_three() -> None:
            await enough.wait()
            await source.aclose()

        nursery.start_soon(close_after_three)
        with trio.fail_after(10):
            async for event in source:
                received.append(event)
                if len(received) == 3:
                    enough.set()
        assert not source.connected
    assert [e.id for e in received[:3]] == ["1", "2", "3"]
    with trio.fail_after(5):
        await seen.handler_done.wait()
    assert len(seen.requests) == 1


async def test_retry_zero_does_not_reconnect_in_a_loop(
    raw_server, autojump_clock: trio.testing.MockClock
) -> None:
    """A server that says retry: 0 gets the one immediate reconnection after a healthy
    stream, then, while its streams keep failing, delays from min_backoff (1 s) doubling."""
    count = 0

    async def retry_zero(stream: trio.SocketStream, head: bytes) -> None:
        nonlocal count
        count += 1
        event = b"id: 1\ndata: healthy\n\n" if count == 1 else b""
        await stream.send_all(response_head() + b"retry: 0\n\n" + event)

    server: RawServer = await raw_server(retry_zero)
    source = EventSource(server.url, max_reconnects=4, random=FixedRandom(1.0))
    with pytest.raises(SSEConnectionError, match="gave up after 4"):
        async with source:
            assert [e.data for e in await take(source, 1)] == ["healthy"]
            await take(source, 1)
    assert source.retry == 0.0
    assert gaps(server.times) == [0.0, 4.0, 8.0, 16.0]


@pytest.mark.parametrize(
    ("sent_id", "header"),
    [
        (b"7 ", b"last-event-id: 7\r\n"),  # h11 refuses surrounding whitespace: stripped
        (b"\t a b", b"last-event-id: a b\r\n"),
        (b"a\x0bb", None),  # a vertical tab inside is no header value: left out
    ],
)
async def test_an_id_that_is_no_header_value_does_not_break_the_stream(
    raw_server, autojump_clock: trio.testing.MockClock, sent_id: bytes, header: bytes | None
) -> None:
    """Any id the parser accepts can be resumed from: trimmed, or sent without the header,
    never a ValueError out of the iteration."""

    async def one_event(stream: trio.SocketStream, head: bytes) -> None:
        await stream.send_all(response_head() + b"id: " + sent_id + b"\ndata: one\n\n")

    server: RawServer = await raw_server(one_event)
    async with EventSource(server.url, random=FixedRandom(0.0)) as source:
        events = await take(source, 2)
    assert [e.id for e in events] == [sent_id.decode()] * 2  # the id itself is kept as sent
    if header is None:
        assert b"last-event-id" not in server.heads[1].lower()
    else:
        assert header in server.heads[1].lower()


async def test_reading_retry_changes_nothing(
    raw_server, autojump_clock: trio.testing.MockClock
) -> None:
    """The retry property reports the server's retry: without applying it; the delay uses
    the server's value whether or not the property was read."""

    async def retry_two(stream: trio.SocketStream, head: bytes) -> None:
        await stream.send_all(response_head() + b"retry: 2000\nid: 1\ndata: x\n\n")

    server: RawServer = await raw_server(retry_two)
    async with EventSource(server.url, retry=5.0, random=FixedRandom(0.0)) as source:
        await take(source, 1)
        assert source.retry == 2.0
        assert source._backoff.retry == 5.0  # applied only when a delay is computed
        await take(source, 1)
    assert gaps(server.times) == [2.0]
