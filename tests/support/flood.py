"""Raw clients for the limit, flood and slowloris tests: many connections, each from a chosen
loopback address (all of 127.0.0.0/8 is local on Linux, so 127.0.0.2 is another client
address to the server's per-client cap)."""

from __future__ import annotations

import trio

from rawstream import App, Event, Request, Response, SSEStream
from support.rawhttp import status_of

HOLD = b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def holding_app(release: trio.Event) -> App:
    """``/healthz`` answers at once; ``/hold`` is an SSE stream that sends ``ready`` and then
    holds its connection open until ``release`` is set (or its client leaves)."""
    app = App()

    @app.get("/healthz")
    async def healthz(request: Request) -> Response:
        return Response.json({"status": "ok"})

    @app.sse("/hold")
    async def hold_stream(request: Request, stream: SSEStream) -> None:
        await stream.send(Event("ready"))
        await release.wait()

    return app


async def status_or_closed(
    port: int,
    data: bytes = HEALTHZ,
    *,
    local_address: str | None = None,
    go: trio.Event | None = None,
    limit: float = 10.0,
) -> int | None:
    """Connect, wait for ``go`` (if given), send ``data`` and read until the server closes:
    the answer's status, or None when the server closed (or reset) the connection without
    answering."""
    stream = await trio.open_tcp_stream("127.0.0.1", port, local_address=local_address)
    received = bytearray()
    async with stream:
        if go is not None:
            await go.wait()
        try:
            await stream.send_all(data)
            with trio.fail_after(limit):
                while chunk := await stream.receive_some(65536):
                    received += chunk
        except trio.BrokenResourceError:  # reset: closed at once, with our request unread
            pass
    return status_of(bytes(received)) if received else None


async def hold(
    port: int,
    release: trio.Event,
    *,
    local_address: str | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Open ``/hold`` of :func:`holding_app`, report started once its stream has begun (the
    server admitted it), keep it open until ``release`` is set, then close it."""
    stream = await trio.open_tcp_stream("127.0.0.1", port, local_address=local_address)
    async with stream:
        await stream.send_all(HOLD)
        received = bytearray()
        while b"data: ready" not in received:
            chunk = await stream.receive_some(65536)
            assert chunk, f"closed before its stream began: {bytes(received)!r}"
            received += chunk
        assert received.startswith(b"HTTP/1.1 200 "), bytes(received)
        task_status.started()
        await release.wait()
