"""Slow-consumer policies, the send deadline, watermarks and send_nowait."""

from __future__ import annotations

import json
import re

import pytest
import trio
import trio.testing
import wsproto.events as ws_events

from rawstream import App, Event, Request, SSEStream, WebSocket
from rawstream.policy import SlowConsumer
from rawstream.server.outbox import Outbox

from .helpers import connect, read_all, read_until, websocket_client

EVENT = Event("x" * 90, id="1")


def sse_flood_app(
    policy: SlowConsumer, sent: list[int], ended: trio.Event, count: int = 10_000
) -> App:
    app = App()

    @app.sse("/flood", slow_consumer=policy)
    async def flood(request: Request, stream: SSEStream) -> None:
        try:
            for i in range(count):
                await stream.send(Event(f"{i:05d}" + "x" * 80, id=str(i)))
                sent.append(i)
        finally:
            ended.set()

    return app


def parse_events(raw: bytes) -> list[tuple[str, str, str]]:
    """(event type, id, data) of each SSE event in a chunked response body."""
    body = raw.split(b"\r\n\r\n", 1)[1].decode()
    events = []
    for block in re.split(r"\n\n", body):
        fields = dict(
            line.split(": ", 1)
            for line in block.splitlines()
            if re.match(r"^(event|id|data|retry): ", line)
        )
        if "data" in fields:
            events.append((fields.get("event", "message"), fields.get("id", ""), fields["data"]))
    return events


async def test_outbox_hysteresis() -> None:
    """A sender blocked at high water resumes only once the outbox is down to low water."""
    sender, receiver = trio.testing.lockstep_stream_pair()
    outbox = Outbox(sender, high_water=100, low_water=40, max_write=30)
    async with trio.open_nursery() as nursery:
        outbox.attach(nursery)
        for _ in range(4):
            outbox.put_nowait(b"x" * 30)  # 120 bytes: over high water
        woke = trio.Event()

        async def waiter() -> None:
            await outbox.wait_writable()
            woke.set()

        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        for remaining in (90, 60):  # each write is capped at 30 bytes
            assert len(await receiver.receive_some(1000)) == 30
            await trio.testing.wait_all_tasks_blocked()
            assert outbox.buffered == remaining
            assert not woke.is_set()
        assert len(await receiver.receive_some(1000)) == 30
        await trio.testing.wait_all_tasks_blocked()
        assert woke.is_set()  # 30 <= low water
        nursery.cancel_scope.cancel()


async def test_block_policy_disconnects_after_send_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """BLOCK waits for room; past send_timeout the consumer is disconnected with retry:."""
    sent: list[int] = []
    ended = trio.Event()
    app = sse_flood_app(SlowConsumer.BLOCK, sent, ended)
    client, conn = connect(nursery, app, lockstep=True, outbox_high_bytes=1000, send_timeout=7)
    await client.send_all(b"GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")
    start = trio.current_time()
    await ended.wait()
    assert 7 <= trio.current_time() - start < 8
    assert conn.server.slow_consumers_disconnected == 1
    assert conn.statistics().time_blocked >= 7
    raw = await read_all(client)
    assert re.search(rb"retry: \d+\n\n\r\n0\r\n\r\n$", raw), raw[-80:]


async def test_disconnect_policy_ends_the_stream_when_full(nursery: trio.Nursery) -> None:
    """DISCONNECT ends the stream as soon as the outbox is full; the client gets retry:."""
    sent: list[int] = []
    ended = trio.Event()
    client, _ = connect(
        nursery,
        sse_flood_app(SlowConsumer.DISCONNECT, sent, ended),
        lockstep=True,
        outbox_high_bytes=1000,
    )
    await client.send_all(b"GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")
    with trio.fail_after(2):
        await ended.wait()
    assert len(sent) < 20
    raw = await read_all(client)
    events = parse_events(raw)
    assert sent and [int(i) for _, i, _ in events] == sent  # in order, nothing lost
    assert re.search(rb"retry: \d+\n\n\r\n0\r\n\r\n$", raw)


async def test_drop_oldest_never_blocks_and_marks_the_gap(nursery: trio.Nursery) -> None:
    """DROP_OLDEST: the producer never waits; the client sees a gap event counting the dropped."""
    sent: list[int] = []
    ended = trio.Event()
    app = sse_flood_app(SlowConsumer.DROP_OLDEST, sent, ended, count=300)
    client, conn = connect(nursery, app, lockstep=True, outbox_high_bytes=1000)
    await client.send_all(b"GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")
    with trio.fail_after(2):
        await ended.wait()  # all 300 sent while the client read nothing
    events = parse_events(await read_all(client))
    gaps = [json.loads(data)["dropped"] for kind, _, data in events if kind == "gap"]
    delivered = [int(i) for kind, i, _ in events if kind == "message"]
    assert gaps and sum(gaps) + len(delivered) == 300
    assert conn.statistics().events_dropped == sum(gaps)
    assert delivered == sorted(delivered) and delivered[-1] == 299


async def test_websocket_disconnect_policy_closes_1013(nursery: trio.Nursery) -> None:
    """A WebSocket consumer that cannot keep up under DISCONNECT gets close 1013."""
    app = App()

    @app.websocket("/ws", slow_consumer=SlowConsumer.DISCONNECT)
    async def push(ws: WebSocket) -> None:
        while True:
            await ws.send(b"y" * 200)

    client_stream, _ = connect(
        nursery, app, lockstep=True, outbox_high_bytes=1000, permessage_deflate=False
    )
    peer, handshake = await websocket_client(client_stream, "/ws")
    await trio.testing.wait_all_tasks_blocked()  # we read nothing: the outbox fills
    codes = [e.code for e in handshake if isinstance(e, ws_events.CloseConnection)]
    with trio.fail_after(5):
        while not codes:
            data = await client_stream.receive_some(65536)
            assert data, "closed without a close frame"
            peer.receive_data(data)  # type: ignore[attr-defined]
            codes = [e.code for e in peer.events() if isinstance(e, ws_events.CloseConnection)]  # type: ignore[attr-defined]
    assert codes == [1013]


async def test_websocket_drop_oldest_sends_gap_and_compresses_per_message(
    nursery: trio.Nursery,
) -> None:
    """DROP_OLDEST on a WebSocket: a gap message, and deflate without context takeover."""
    app = App()
    done = trio.Event()

    @app.websocket("/ws", slow_consumer=SlowConsumer.DROP_OLDEST)
    async def push(ws: WebSocket) -> None:
        for i in range(200):
            await ws.send(f"{i:05d}" + "z" * 200)
        done.set()
        await ws.receive()

    client_stream, _ = connect(nursery, app, lockstep=True, outbox_high_bytes=1000)
    peer, handshake = await websocket_client(client_stream, "/ws", deflate=True)
    accept = next(e for e in handshake if isinstance(e, ws_events.AcceptConnection))
    assert "server_no_context_takeover" in str(accept.extensions[0])
    with trio.fail_after(2):
        await done.wait()
    messages = [e.data for e in handshake if isinstance(e, ws_events.TextMessage)]
    with trio.move_on_after(1):
        while not messages or not messages[-1].startswith("00199"):
            peer.receive_data(await client_stream.receive_some(65536))  # type: ignore[attr-defined]
            messages += [e.data for e in peer.events() if isinstance(e, ws_events.TextMessage)]  # type: ignore[attr-defined]
    gaps = [json.loads(m)["dropped"] for m in messages if m.startswith("{")]
    delivered = [m for m in messages if not m.startswith("{")]
    assert gaps and sum(gaps) + len(delivered) == 200
    assert delivered[-1].startswith("00199")


@pytest.mark.parametrize("policy", [SlowConsumer.BLOCK, SlowConsumer.DISCONNECT])
async def test_send_nowait_reports_a_full_outbox(
    nursery: trio.Nursery, policy: SlowConsumer
) -> None:
    """send_nowait never blocks: BLOCK raises WouldBlock, DISCONNECT ends the consumer."""
    app = App()
    outcome: list[str] = []
    done = trio.Event()

    @app.sse("/fan", slow_consumer=policy)
    async def fan(request: Request, stream: SSEStream) -> None:
        try:
            for i in range(1000):
                stream.send_nowait(Event("x" * 100, id=str(i)))
        except trio.WouldBlock:
            outcome.append("would block")
        except trio.BrokenResourceError:
            outcome.append("disconnected")
        finally:
            done.set()
        await trio.sleep_forever()

    client, _ = connect(nursery, app, lockstep=True, outbox_high_bytes=1000)
    await client.send_all(b"GET /fan HTTP/1.1\r\nHost: x\r\n\r\n")
    with trio.fail_after(2):
        await done.wait()
    assert outcome == ["would block" if policy is SlowConsumer.BLOCK else "disconnected"]
    if policy is SlowConsumer.BLOCK:
        await read_until(client, b"id: 0\n")


async def test_gap_markers_merge_so_the_queue_cannot_grow() -> None:
    """Under constant DROP_OLDEST pressure the queue keeps at most one gap marker."""
    sender, _receiver = trio.testing.lockstep_stream_pair()
    outbox = Outbox(sender, high_water=100)  # no writer runs: nothing ever leaves
    total = 0
    for _ in range(10_000):
        outbox.put_nowait(b"e" * 50, droppable=True)
        total += outbox.drop_pending(lambda n: b"gap:%d;" % n)
    assert outbox.buffered < 100
    assert outbox.items_dropped == total == 10_000
    assert outbox._chunks == [b"gap:10000;"]


async def test_websocket_cannot_switch_to_drop_oldest_with_context_takeover(
    nursery: trio.Nursery,
) -> None:
    """A handler may not turn on DROP_OLDEST where frames depend on each other."""
    app = App()
    refused: list[str] = []

    @app.websocket("/ws")  # BLOCK route: deflate with context takeover may be negotiated
    async def switch(ws: WebSocket) -> None:
        try:
            ws.slow_consumer = SlowConsumer.DROP_OLDEST
        except ValueError as exc:
            refused.append(str(exc))
        await ws.accept()
        await ws.send("ok")

    client_stream, _ = connect(nursery, app)
    await websocket_client(client_stream, "/ws", deflate=True)
    await trio.testing.wait_all_tasks_blocked()
    assert refused and "DROP_OLDEST" in refused[0]


async def test_a_kept_stream_cannot_write_after_it_ended(nursery: trio.Nursery) -> None:
    """A fan-out holding an ended SSEStream gets BrokenResourceError; the next request is fine."""
    app = App()
    kept: list[SSEStream] = []

    @app.sse("/once")
    async def once(request: Request, stream: SSEStream) -> None:
        await stream.send("only")
        kept.append(stream)

    client, _ = connect(nursery, app)
    await client.send_all(b"GET /once HTTP/1.1\r\nHost: x\r\n\r\n")
    await read_until(client, b"0\r\n\r\n")
    with pytest.raises(trio.BrokenResourceError):
        kept[0].send_nowait(Event("late"))
    with pytest.raises(trio.BrokenResourceError):
        await kept[0].send(Event("late"))
    await client.send_all(b"GET /once HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    second = await read_all(client)
    assert second.startswith(b"HTTP/1.1 200 ") and b"late" not in second


async def test_streamed_download_to_a_stuck_client_is_cut_after_send_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A streamed body waits for a client that never reads only up to send_timeout; the
    body is then left unterminated, so the client cannot mistake it for complete."""
    from collections.abc import AsyncIterator

    from rawstream import Response

    app = App()
    closed = trio.Event()

    @app.get("/download")
    async def download(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield b"d" * 1000
            finally:
                closed.set()

        return Response(body())

    client, conn = connect(nursery, app, lockstep=True, outbox_high_bytes=4000, send_timeout=9)
    await client.send_all(b"GET /download HTTP/1.1\r\nHost: x\r\n\r\n")
    start = trio.current_time()
    await closed.wait()
    assert 9 <= trio.current_time() - start < 10
    assert conn.server.slow_consumers_disconnected == 1
    assert not (await read_all(client)).endswith(b"0\r\n\r\n")


async def test_written_notice_fires_when_the_item_is_written_despite_drops() -> None:
    """A watched item (a ping) is reported written exactly when it leaves, even after the
    events queued before it were dropped (a byte count target would never be reached)."""
    sender, receiver = trio.testing.lockstep_stream_pair()
    outbox = Outbox(sender, high_water=1000)
    async with trio.open_nursery() as nursery:
        outbox.attach(nursery)
        outbox.put_nowait(b"x" * 50)  # taken by the writer, which now waits for us
        await trio.testing.wait_all_tasks_blocked()
        outbox.put_nowait(b"e" * 100, droppable=True)
        outbox.put_nowait(b"e" * 100, droppable=True)
        written = trio.Event()
        outbox.put_nowait(b"PING", written=written)
        assert outbox.drop_pending(lambda n: b"gap%d;" % n) == 2
        assert await receiver.receive_some(1000) == b"x" * 50
        await trio.testing.wait_all_tasks_blocked()
        assert not written.is_set()
        assert await receiver.receive_some(1000) == b"gap2;PING"
        await trio.testing.wait_all_tasks_blocked()
        assert written.is_set()
        nursery.cancel_scope.cancel()
