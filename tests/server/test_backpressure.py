"""Backpressure: a producer blocks while its client does not read, and resumes when it does."""

from __future__ import annotations

import trio
import trio.testing
from support.rawhttp import websocket_upgrade

from rawstream import App, Event, Request, SSEStream, WebSocket
from rawstream.server.outbox import Outbox

from .helpers import connect, read_until

EVENT_SIZE = len(Event("x" * 90, id="1").encode())


def counting_app(sent: list[int]) -> App:
    app = App()

    @app.sse("/flood")
    async def flood(request: Request, stream: SSEStream) -> None:
        for i in range(10_000):
            await stream.send(Event("x" * 90, id="1"))
            sent.append(i)

    return app


async def test_sse_producer_blocks_on_a_client_that_does_not_read(nursery: trio.Nursery) -> None:
    """With a 1000-byte outbox, the handler stops after about 1000 bytes of events."""
    sent: list[int] = []
    client, _ = connect(nursery, counting_app(sent), lockstep=True, outbox_high_bytes=1000)
    await client.send_all(b"GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")
    await trio.testing.wait_all_tasks_blocked()
    stalled_at = len(sent)
    # One write may be in flight (lockstep: the writer waits for us) plus the outbox's bound.
    assert 0 < stalled_at <= 1000 // EVENT_SIZE + 2
    await trio.testing.wait_all_tasks_blocked()
    assert len(sent) == stalled_at, "the producer must stay blocked while nobody reads"


async def test_sse_producer_resumes_when_the_client_reads(nursery: trio.Nursery) -> None:
    """Reading from the client side lets the blocked handler produce more."""
    sent: list[int] = []
    client, _ = connect(nursery, counting_app(sent), lockstep=True, outbox_high_bytes=1000)
    await client.send_all(b"GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")
    await trio.testing.wait_all_tasks_blocked()
    stalled_at = len(sent)
    received = 0
    while received < 20 * EVENT_SIZE:
        received += len(await client.receive_some(65536))
    await trio.testing.wait_all_tasks_blocked()
    assert len(sent) > stalled_at + 10


async def test_websocket_sender_blocks_too(nursery: trio.Nursery) -> None:
    """A WebSocket handler's send waits on a client that does not read."""
    sent: list[int] = []
    app = App()

    @app.websocket("/ws")
    async def push(ws: WebSocket) -> None:
        for i in range(10_000):
            await ws.send(b"y" * 100)
            sent.append(i)

    client, _ = connect(
        nursery, app, lockstep=True, outbox_high_bytes=1000, permessage_deflate=False
    )
    await client.send_all(websocket_upgrade("/ws"))
    await trio.testing.wait_all_tasks_blocked()
    assert 0 < len(sent) <= 1000 // 102 + 2


async def test_outbox_coalesces_queued_writes() -> None:
    """Bytes queued while a write is in flight go out together in the next single write."""
    sender, receiver = trio.testing.lockstep_stream_pair()
    outbox = Outbox(sender, high_water=1 << 20)
    async with trio.open_nursery() as nursery:
        outbox.attach(nursery)
        outbox.put_nowait(b"first;")
        await trio.testing.wait_all_tasks_blocked()  # the writer is now blocked in send_all
        for i in range(5):
            outbox.put_nowait(b"queued-%d;" % i)
        assert await receiver.receive_some(65536) == b"first;"
        assert await receiver.receive_some(65536) == b"".join(b"queued-%d;" % i for i in range(5))
        nursery.cancel_scope.cancel()


async def test_outbox_wait_writable_blocks_at_its_limit() -> None:
    """wait_writable blocks once the queued bytes reach the limit, and wakes when drained."""
    sender, receiver = trio.testing.lockstep_stream_pair()
    outbox = Outbox(sender, high_water=10, low_water=10)
    async with trio.open_nursery() as nursery:
        outbox.attach(nursery)
        outbox.put_nowait(b"0123456789")
        woke = trio.Event()

        async def waiter() -> None:
            await outbox.wait_writable()
            woke.set()

        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert not woke.is_set()
        assert await read_until(receiver, b"9") == b"0123456789"
        await trio.testing.wait_all_tasks_blocked()
        assert woke.is_set()
        nursery.cancel_scope.cancel()


async def test_lone_event_is_written_at_once(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """On an idle connection one event goes out without waiting for more (no time passes,
    on a clock that would jump to any timer the server waited on)."""
    app = App()
    gate = trio.Event()

    @app.sse("/one")
    async def one(request: Request, stream: SSEStream) -> None:
        await stream.send(Event("only", id="1"))
        await gate.wait()

    client, _ = connect(nursery, app)
    start = trio.current_time()
    await client.send_all(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n")
    await read_until(client, b"data: only\n\n")
    assert trio.current_time() == start
    gate.set()


async def test_flooding_websocket_client_cannot_grow_server_memory(nursery: trio.Nursery) -> None:
    """A client sending 8 MiB to a handler that never reads: the server holds only its bounds."""
    import wsproto
    import wsproto.events as ws_events

    from .helpers import websocket_client

    app = App()
    accepted = trio.Event()

    @app.websocket("/ws")
    async def deaf(ws: WebSocket) -> None:
        await ws.accept()
        accepted.set()
        await trio.sleep_forever()

    client_stream, conn = connect(
        nursery,
        app,
        read_buffer_bytes=32 * 1024,
        ws_queue_bytes=64 * 1024,
        permessage_deflate=False,
    )
    peer, _ = await websocket_client(client_stream, "/ws")
    assert isinstance(peer, wsproto.WSConnection)
    await accepted.wait()
    message = peer.send(ws_events.BytesMessage(data=b"f" * 16 * 1024))
    for _ in range(512):  # the in-memory pipe takes it all; the server reads what it wants
        await client_stream.send_all(message)
    await trio.testing.wait_all_tasks_blocked()
    received = conn.statistics().bytes_received
    assert received < 32 * 1024 + 64 * 1024 + 2 * (16 * 1024 + 14) + 65536  # bounds + one read
    assert conn.receiver.buffered <= 32 * 1024 + 65536
