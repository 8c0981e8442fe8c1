"""rawstream.broadcast end to end: one message to WebSockets and SSE streams at once, through
trio-websocket, websockets (which negotiates permessage-deflate) and httpx-sse (plain and
gzipped streams)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
from httpx_sse import aconnect_sse
from trio_websocket import WebSocketConnection, open_websocket_url
from websockets.sync.client import connect

from rawstream import (
    App,
    Delivery,
    Event,
    Prepared,
    Request,
    Response,
    SSEStream,
    WebSocket,
    broadcast,
)


class Audience:
    """An app whose recipients are kept in two sets, and the server's answer to broadcasts."""

    def __init__(self) -> None:
        self.websockets: set[WebSocket] = set()
        self.streams: set[SSEStream] = set()
        self.changed = trio.Event()
        self.app = App()

        @self.app.websocket("/ws")
        async def join(ws: WebSocket) -> None:
            await ws.accept()
            self._add(self.websockets, ws)
            try:
                async for _ in ws:
                    pass
            finally:
                self.websockets.discard(ws)

        async def listen(request: Request, stream: SSEStream) -> None:
            await stream.open()
            self._add(self.streams, stream)
            try:
                await trio.sleep_forever()
            finally:
                self.streams.discard(stream)

        self.app.sse("/sse")(listen)
        self.app.sse("/sse/gzip", compress=True)(listen)

        @self.app.post("/broadcast")
        async def send(request: Request) -> Response:
            body = await request.json()
            to = {"ws": self.websockets, "sse": self.streams}
            recipients = [r for kind in body["to"] for r in to[kind]]
            message: str | bytes | Event = body["text"]
            if body.get("binary"):
                message = body["text"].encode()
            elif body.get("event"):
                message = Event(body["text"], event=body["event"], id=body["id"])
            return Response.json(as_json(broadcast(recipients, message)))

    def _add(self, recipients: set[Any], recipient: object) -> None:
        recipients.add(recipient)
        self.changed.set()
        self.changed = trio.Event()

    async def wait_for(self, websockets: int, streams: int) -> None:
        with trio.fail_after(5):
            while (len(self.websockets), len(self.streams)) != (websockets, streams):
                await self.changed.wait()


def as_json(delivery: Delivery) -> dict[str, int]:
    return {"queued": delivery.queued, "full": len(delivery.full), "closed": delivery.closed}


@pytest.fixture
async def audience(start_server) -> AsyncIterator[tuple[Audience, int]]:
    audience = Audience()
    server = await start_server(audience.app)
    yield audience, server.port


async def next_sse(events: AsyncIterator[Any]) -> Any:
    with trio.fail_after(5):
        return await events.__anext__()


async def test_one_message_reaches_every_kind_of_recipient(
    audience: tuple[Audience, int],
) -> None:
    """Text to everyone (framed once for plain WebSockets and plain chunked streams, compressed
    per recipient for deflate and gzip), bytes to WebSockets only, an Event to SSE only."""
    app, port = audience
    base = f"127.0.0.1:{port}"
    async with (
        httpx.AsyncClient(base_url=f"http://{base}") as http,
        open_websocket_url(f"ws://{base}/ws") as plain_a,
        open_websocket_url(f"ws://{base}/ws") as plain_b,
        aconnect_sse(http, "GET", "/sse") as plain_sse,
        aconnect_sse(http, "GET", "/sse/gzip") as gzip_sse,
    ):
        assert gzip_sse.response.headers["content-encoding"] == "gzip"
        received: list[str | bytes] = []
        async with trio.open_nursery() as nursery:  # websockets blocks: in a thread
            nursery.start_soon(
                trio.to_thread.run_sync, deflated_member, f"ws://{base}/ws", received
            )
            await app.wait_for(websockets=3, streams=2)
            sse = [plain_sse.aiter_sse(), gzip_sse.aiter_sse()]

            async def publish(**body: Any) -> dict[str, int]:
                answer = await http.post("/broadcast", json=body)
                assert answer.status_code == 200, answer.text
                return answer.json()  # type: ignore[no-any-return]

            delivery = await publish(to=["ws", "sse"], text="hello, everyone " * 20)
            assert delivery == {"queued": 5, "full": 0, "closed": 0}
            for ws in (plain_a, plain_b):
                assert await receive(ws) == "hello, everyone " * 20
            for events in sse:
                assert (await next_sse(events)).data == "hello, everyone " * 20

            assert await publish(to=["ws"], text="\x00\x01", binary=True) == {
                "queued": 3,
                "full": 0,
                "closed": 0,
            }
            for ws in (plain_a, plain_b):
                assert await receive(ws) == b"\x00\x01"

            delivery = await publish(to=["sse"], text='{"n": 1}', event="tick", id="7")
            assert delivery == {"queued": 2, "full": 0, "closed": 0}
            for events in sse:
                got = await next_sse(events)
                assert (got.event, got.id, json.loads(got.data)) == ("tick", "7", {"n": 1})

        assert received == ["hello, everyone " * 20, b"\x00\x01"]


def deflated_member(url: str, received: list[str | bytes]) -> None:
    """A websockets client (it negotiates permessage-deflate): two messages, then it leaves."""
    with connect(url) as ws:
        assert ws.response.headers["sec-websocket-extensions"].startswith("permessage-deflate")
        received.extend(ws.recv(timeout=5) for _ in range(2))


async def receive(ws: WebSocketConnection) -> str | bytes:
    with trio.fail_after(5):
        return await ws.get_message()


async def test_a_message_of_the_wrong_kind_for_a_recipient_is_refused(
    audience: tuple[Audience, int],
) -> None:
    """SSE carries text only, and an Event is an SSE event: the broadcast raises TypeError,
    and the route answers 500 while the server goes on."""
    app, port = audience
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
        aconnect_sse(http, "GET", "/sse") as source,
        open_websocket_url(f"ws://127.0.0.1:{port}/ws") as ws,
    ):
        await app.wait_for(websockets=1, streams=1)
        bad = [
            {"to": ["sse"], "text": "x", "binary": True},
            {"to": ["ws"], "text": "x", "event": "e", "id": "1"},
        ]
        for body in bad:
            assert (await http.post("/broadcast", json=body)).status_code == 500
        with pytest.raises(TypeError, match="SSE carries text"):
            broadcast(app.streams, b"binary")
        with pytest.raises(TypeError, match="SSE event"):
            broadcast(app.websockets, Event("x"))
        assert (await http.post("/broadcast", json={"to": ["sse", "ws"], "text": "ok"})).json()[
            "queued"
        ] == 2
        assert await receive(ws) == "ok"
        assert (await next_sse(source.aiter_sse())).data == "ok"


def test_a_prepared_message_encodes_once() -> None:
    """Prepared makes each encoding once, on first use, however many recipients take it."""
    prepared = Prepared("tick")
    assert prepared.ws_frame is prepared.ws_frame
    assert prepared.sse_chunk is prepared.sse_chunk
    assert prepared.sse == b"data: tick\n\n"
    assert prepared.sse_chunk == b"c\r\ndata: tick\n\n\r\n"
    assert prepared.ws_frame == b"\x81\x04tick"
    with pytest.raises(TypeError):
        Prepared(1)  # type: ignore[arg-type]


async def test_sse_sources_see_it_as_plain_events(audience: tuple[Audience, int]) -> None:
    """The shared chunk is exactly the stream's own framing: a client reads the events that
    follow a broadcast unchanged."""
    app, port = audience
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
        aconnect_sse(http, "GET", "/sse") as source,
    ):
        await app.wait_for(websockets=0, streams=1)
        events = source.aiter_sse()
        for n in range(50):
            delivery = broadcast(app.streams, Event(f"n{n}", id=str(n)))
            assert (delivery.queued, delivery.full, delivery.closed) == (1, (), 0)
        for n in range(50):
            got = await next_sse(events)
            assert (got.id, got.data) == (str(n), f"n{n}")
