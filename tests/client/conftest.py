"""Servers for the client tests: a rawstream app recording what it saw, and a raw server that
writes exact bytes (for responses no well-behaved server would send)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial

import pytest
import trio
from support.rawserver import StartRawServer, start_raw_server

from rawstream import App, Event, HTTPError, Request, Response, SSEStream


@dataclass
class Seen:
    """What the app's handlers saw, for asserting on the server's side of a conversation."""

    requests: list[Request] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    handler_done: trio.Event = field(default_factory=trio.Event)
    handler_cancelled: bool = False

    def record(self, request: Request) -> None:
        self.requests.append(request)
        self.times.append(trio.current_time())

    @property
    def last_event_ids(self) -> list[str | None]:
        return [request.headers.get("last-event-id") for request in self.requests]


def client_app(seen: Seen) -> App:
    """Routes for the client tests; each records its requests in ``seen``."""
    app = App()

    @app.sse("/count")
    async def count(request: Request, stream: SSEStream) -> None:
        """``n`` events numbered on from Last-Event-ID, then the end of the stream."""
        seen.record(request)
        start = int(request.last_event_id or 0) + 1
        for i in range(start, start + int(request.query.get("n", "3"))):
            await stream.send(Event(f"event {i}", id=str(i), event="count"))

    @app.sse("/batches")
    async def batches(request: Request, stream: SSEStream) -> None:
        """Two events per connection, numbered on from Last-Event-ID; then the stream ends."""
        seen.record(request)
        if "retry" in request.query:
            await stream.send(Event(retry=int(request.query["retry"])))
        start = int(request.last_event_id or 0) + 1
        if start > int(request.query.get("until", "1000000")):
            raise HTTPError(204)
        for i in (start, start + 1):
            await stream.send(Event(f"event {i}", id=str(i)))

    @app.sse("/multiline")
    async def multiline(request: Request, stream: SSEStream) -> None:
        await stream.send(Event("line one\nline two\r\nline three\rline four", id="m1"))
        await stream.send(Event('{"answer": 42}', event="json"))

    @app.sse("/forever")
    async def forever(request: Request, stream: SSEStream) -> None:
        seen.record(request)
        try:
            i = 0
            while True:
                i += 1
                await stream.send(Event(str(i), id=str(i)))
                await trio.sleep(0.01)
        except trio.Cancelled:
            seen.handler_cancelled = True
            raise
        finally:
            seen.handler_done.set()

    @app.sse("/stop")
    async def stop(request: Request, stream: SSEStream) -> None:
        seen.record(request)
        raise HTTPError(204)

    @app.sse("/missing-sometimes")
    async def refused(request: Request, stream: SSEStream) -> None:
        seen.record(request)
        raise HTTPError(int(request.query["status"]), "not here")

    @app.get("/page")
    async def page(request: Request) -> Response:
        seen.record(request)
        return Response("<!doctype html><p>not a stream</p>", content_type="text/html")

    @app.sse("/big")
    async def big(request: Request, stream: SSEStream) -> None:
        await stream.send(Event("small", id="1"))
        await stream.send(Event("x" * int(request.query["size"]), id="2"))

    async def chat(request: Request, stream: SSEStream) -> None:
        """A POST with a JSON body, answered as a stream of its words (like an LLM API)."""
        seen.record(request)
        body = await request.json()
        for word in body["prompt"].split():
            await stream.send(Event(word))
        await stream.send(Event("[DONE]"))

    app.add_route("/chat", chat, kind="sse", methods=("POST",))
    return app


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
async def base(start_server, seen: Seen) -> str:
    server = await start_server(client_app(seen), sse_keepalive=None)
    return f"http://127.0.0.1:{server.port}"


class FixedRandom(random.Random):
    """A jitter source that always draws the same fraction of the window (0 = its floor)."""

    def __init__(self, fraction: float) -> None:
        super().__init__()
        self.fraction = fraction

    def random(self) -> float:
        return self.fraction


@pytest.fixture
async def raw_server(nursery: trio.Nursery) -> AsyncIterator[StartRawServer]:
    """``server = await raw_server(handler)``: ``await handler(stream, request_head)`` for
    every connection, which is closed when the handler returns (see support.rawserver)."""
    yield partial(start_raw_server, nursery)
