"""rawstream.broadcast and each recipient's slow-consumer policy, over in-memory streams that
nobody reads (so the outbox fills): BLOCK leaves the recipient out and says so, DISCONNECT
closes it (1013 for a WebSocket, a retry hint for SSE), DROP_OLDEST queues with a gap marker.
The publisher never waits."""

from __future__ import annotations

import json

import pytest
import trio
import trio.lowlevel
import trio.testing
import wsproto.events as ws_events

from rawstream import App, Event, Request, SSEStream, WebSocket, broadcast
from rawstream.policy import SlowConsumer

from .helpers import connect, read_until, websocket_client

BIG = "y" * 200


async def unread_websocket(
    nursery: trio.Nursery, policy: SlowConsumer, *, deflate: bool = False
) -> tuple[list[WebSocket], trio.abc.Stream, object]:
    """An accepted WebSocket under ``policy`` whose client reads nothing (a 1000-byte
    outbox): the server's handle (in the list once joined), the client's stream, its peer."""
    app = App()
    joined: list[WebSocket] = []

    @app.websocket("/ws", slow_consumer=policy)
    async def join(ws: WebSocket) -> None:
        await ws.accept()
        joined.append(ws)
        await trio.sleep_forever()

    client_stream, _ = connect(
        nursery, app, lockstep=True, outbox_high_bytes=1000, permessage_deflate=deflate
    )
    peer, _ = await websocket_client(client_stream, "/ws", deflate=deflate)
    await trio.testing.wait_all_tasks_blocked()
    return joined, client_stream, peer


async def read_ws(client_stream: trio.abc.Stream, peer: object, until: object) -> list[object]:
    events: list[object] = []
    with trio.fail_after(5):
        while not any(until(e) for e in events):  # type: ignore[operator]
            data = await client_stream.receive_some(65536)
            assert data, "closed early"
            peer.receive_data(data)  # type: ignore[attr-defined]
            events += peer.events()  # type: ignore[attr-defined]
    return events


async def test_block_leaves_a_full_recipient_out_and_says_so(nursery: trio.Nursery) -> None:
    """Under BLOCK a full outbox is not waited for: the recipient is in Delivery.full, nothing
    was queued to it, and what was queued before arrives whole and in order."""
    joined, client_stream, peer = await unread_websocket(nursery, SlowConsumer.BLOCK)
    queued = 0
    for n in range(100):
        delivery = broadcast(joined, f"{n:03d}{BIG}")
        if delivery.full:
            break
        assert delivery.queued == 1
        queued += 1
    assert delivery.full == (joined[0],) and (delivery.queued, delivery.closed) == (0, 0)
    assert 0 < queued < 100
    texts = [
        e.data
        for e in await read_ws(
            client_stream,
            peer,
            lambda e: (
                isinstance(e, ws_events.TextMessage) and e.data.startswith(f"{queued - 1:03d}")
            ),
        )
        if isinstance(e, ws_events.TextMessage)
    ]
    assert texts == [f"{n:03d}{BIG}" for n in range(queued)]
    await joined[0].send("after")  # the publisher may wait for it itself


async def test_disconnect_closes_a_full_websocket_with_1013(nursery: trio.Nursery) -> None:
    joined, client_stream, peer = await unread_websocket(nursery, SlowConsumer.DISCONNECT)
    deliveries = [broadcast(joined, BIG) for _ in range(20)]
    closed = [d for d in deliveries if d.closed]
    assert closed and all(not d.full for d in deliveries)
    assert deliveries.index(closed[0]) > 0  # it took messages until its outbox was full
    events = await read_ws(client_stream, peer, lambda e: isinstance(e, ws_events.CloseConnection))
    assert [e.code for e in events if isinstance(e, ws_events.CloseConnection)] == [1013]


async def test_drop_oldest_queues_every_message_and_marks_the_gap(nursery: trio.Nursery) -> None:
    joined, client_stream, peer = await unread_websocket(
        nursery, SlowConsumer.DROP_OLDEST, deflate=True
    )
    for n in range(200):
        delivery = broadcast(joined, f"{n:05d}{BIG}")
        assert (delivery.queued, delivery.full, delivery.closed) == (1, (), 0)
    events = await read_ws(
        client_stream,
        peer,
        lambda e: isinstance(e, ws_events.TextMessage) and e.data.startswith("00199"),
    )
    messages = [e.data for e in events if isinstance(e, ws_events.TextMessage)]
    gaps = [json.loads(m)["dropped"] for m in messages if m.startswith("{")]
    delivered = [m for m in messages if not m.startswith("{")]
    assert gaps and sum(gaps) + len(delivered) == 200
    assert delivered == sorted(delivered)


@pytest.mark.parametrize("policy", [SlowConsumer.BLOCK, SlowConsumer.DISCONNECT])
async def test_sse_streams_follow_their_policy(nursery: trio.Nursery, policy: SlowConsumer) -> None:
    """The same for an SSE stream: BLOCK reports it full, DISCONNECT ends it with a retry
    hint so the client resumes from Last-Event-ID."""
    app = App()
    joined: list[SSEStream] = []

    @app.sse("/sse", slow_consumer=policy)
    async def listen(request: Request, stream: SSEStream) -> None:
        await stream.open()
        joined.append(stream)
        await trio.sleep_forever()

    client, _ = connect(nursery, app, lockstep=True, outbox_high_bytes=1000)
    await client.send_all(b"GET /sse HTTP/1.1\r\nHost: x\r\n\r\n")
    await read_until(client, b"\r\n\r\n")
    with trio.fail_after(2):
        while not joined:
            await trio.lowlevel.checkpoint()
    deliveries = [broadcast(joined, Event(BIG, id=str(n))) for n in range(30)]
    if policy is SlowConsumer.BLOCK:
        assert any(d.full for d in deliveries) and not any(d.closed for d in deliveries)
        await read_until(client, b"id: 0\n")
    else:
        assert any(d.closed for d in deliveries) and not any(d.full for d in deliveries)
        await read_until(client, b"retry: ")
