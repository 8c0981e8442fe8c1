"""An application with one route per behaviour the end-to-end tests check.

``Probes`` records what handlers saw and whether their cleanup ran, so a test can assert on
the server side of a conversation that a real client drove.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from rawstream import App, Event, HTTPError, Request, Response, SSEStream, WebSocket


@dataclass
class Probes:
    started: trio.Event = field(default_factory=trio.Event)
    cleaned_up: trio.Event = field(default_factory=trio.Event)
    resource_released: trio.Event = field(default_factory=trio.Event)
    gate: trio.Event = field(default_factory=trio.Event)
    handler_cancelled: bool = False
    ws_close_code: int | None = None
    seen: list[object] = field(default_factory=list)


@asynccontextmanager
async def held_resource(probes: Probes) -> AsyncIterator[None]:
    """Stands for a database cursor or an upstream connection."""
    try:
        yield
    finally:
        probes.resource_released.set()


def build_app(probes: Probes) -> App:
    app = App()

    @app.get("/healthz")
    async def healthz(request: Request) -> Response:
        return Response.json({"status": "ok"})

    @app.post("/echo")
    async def echo_body(request: Request) -> Response:
        body = await request.body()
        return Response(
            body, content_type=request.headers.get("content-type", "application/octet-stream")
        )

    @app.get("/info")
    async def info(request: Request) -> Response:
        return Response.json(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query.getlist("q"),
                "client": request.client[0],
                "last_event_id": request.last_event_id,
                "agent": request.headers.get("user-agent"),
            }
        )

    @app.get("/items/{item_id}")
    async def item(request: Request) -> Response:
        return Response.text(f"item {request.path_params['item_id']}")

    @app.get("/teapot")
    async def teapot(request: Request) -> Response:
        raise HTTPError(418, "I'm a teapot")

    @app.get("/crash")
    async def crash(request: Request) -> Response:
        raise RuntimeError("handler bug")

    @app.get("/chunks")
    async def chunks(request: Request) -> Response:
        count = int(request.query.get("n", "3"))

        async def body() -> AsyncIterator[bytes]:
            for i in range(count):
                yield f"chunk {i}\n".encode()

        return Response(body(), content_type="text/plain")

    @app.sse("/sse/count")
    async def count(request: Request, stream: SSEStream) -> None:
        start = int(request.last_event_id or 0) + 1
        for i in range(start, start + int(request.query.get("n", "5"))):
            await stream.send(Event(f"event {i}", id=str(i), event="count"))

    @app.sse("/sse/multiline")
    async def multiline(request: Request, stream: SSEStream) -> None:
        await stream.send(Event("line one\nline two\r\nline three\rline four", id="m1"))

    @app.sse("/sse/forever")
    async def forever(request: Request, stream: SSEStream) -> None:
        probes.started.set()
        try:
            i = 0
            while True:
                i += 1
                await stream.send(Event(str(i), id=str(i)))
                await trio.sleep(0.01)
        except trio.Cancelled:
            probes.handler_cancelled = True
            raise
        finally:
            probes.cleaned_up.set()

    @app.sse("/sse/generator")
    async def generator(request: Request) -> AsyncIterator[Event]:
        async with held_resource(probes):
            probes.started.set()
            i = 0
            while True:
                i += 1
                yield Event(f"tick {i}", id=str(i))
                await trio.sleep(0.01)

    @app.sse("/sse/finite-generator")
    async def finite_generator(request: Request) -> AsyncIterator[Event | str]:
        yield "plain string"
        yield Event("with type", event="typed")

    @app.sse("/sse/private")
    async def private(request: Request, stream: SSEStream) -> None:
        if request.headers.get("authorization") != "Bearer ok":
            raise HTTPError(401, "no token")
        await stream.send("secret")

    @app.sse("/sse/stop")
    async def stop(request: Request, stream: SSEStream) -> None:
        raise HTTPError(204)  # EventSource: stop reconnecting

    @app.post("/accepted-quietly")
    async def accepted_quietly(request: Request) -> Response:
        return Response(status=204)

    @app.get("/nocontent")
    async def nocontent(request: Request) -> Response:
        raise HTTPError(204)

    @app.get("/slow-download")
    async def slow_download(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield b"part one;"
            probes.started.set()
            await probes.gate.wait()
            yield b"part two"

        return Response(body(), content_type="text/plain")

    @app.get("/bad-header")
    async def bad_header(request: Request) -> Response:
        return Response("x", headers={"x-injected": "a\r\nb"})

    @app.sse("/sse/two-senders")
    async def sse_two_senders(request: Request, stream: SSEStream) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream.send, Event("a", id="a"))
            nursery.start_soon(stream.send, Event("b", id="b"))

    @app.websocket("/ws/two-senders")
    async def ws_two_senders(ws: WebSocket) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ws.send, "a")
            nursery.start_soon(ws.send, "b")
        async for _ in ws:
            pass

    @app.websocket("/ws/reject-then-receive")
    async def ws_reject_then_receive(ws: WebSocket) -> None:
        await ws.reject(403)
        try:
            async for _ in ws:
                pass
        finally:
            probes.cleaned_up.set()

    @app.websocket("/ws/slow-accept")
    async def ws_slow_accept(ws: WebSocket) -> None:
        probes.started.set()
        try:
            await trio.sleep_forever()
        finally:
            probes.cleaned_up.set()

    @app.websocket("/ws/echo")
    async def ws_echo(ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)
        probes.ws_close_code = ws.close_code

    @app.websocket("/ws/chat", subprotocols=["chat.v2", "chat.v1"])
    async def ws_chat(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send(f"subprotocol={ws.subprotocol}")
        async for message in ws:
            await ws.send(message)

    @app.websocket("/ws/hold")
    async def ws_hold(ws: WebSocket) -> None:
        await ws.accept()
        probes.started.set()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            probes.handler_cancelled = True
            raise
        finally:
            probes.cleaned_up.set()

    @app.websocket("/ws/listen")
    async def ws_listen(ws: WebSocket) -> None:
        probes.started.set()
        try:
            async for message in ws:
                probes.seen.append(message)
        finally:
            probes.ws_close_code = ws.close_code
            probes.cleaned_up.set()

    @app.websocket("/ws/reject")
    async def ws_reject(ws: WebSocket) -> None:
        await ws.reject(403, "not allowed")

    @app.websocket("/ws/crash")
    async def ws_crash(ws: WebSocket) -> None:
        await ws.accept()
        raise RuntimeError("handler bug")

    @app.websocket("/ws/bye")
    async def ws_bye(ws: WebSocket) -> None:
        await ws.send("bye")
        await ws.close(4000, "done here")

    return app
