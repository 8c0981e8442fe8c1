"""Run one server-side HTTP/1.1 connection (H1Connection) over an in-memory stream."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from rawstream import App, Config, Server
from rawstream.server.h1 import H1Connection


def connect(
    nursery: trio.Nursery, app: App, *, lockstep: bool = False, **config: Any
) -> tuple[trio.abc.Stream, H1Connection]:
    """Start an H1Connection serving ``app``; return the client's end of the stream and it."""
    if lockstep:
        client, server_side = trio.testing.lockstep_stream_pair()
    else:
        client, server_side = trio.testing.memory_stream_pair()
    settings = Config(**config)
    server = Server(app, settings)
    conn = H1Connection(server_side, ("test-client", 1), app, settings, server)
    nursery.start_soon(_run_with_server_tasks, conn, server)

    return client, conn


#: Errors that escaped a connection (checked after every test by tests/server/conftest.py:
#: pytest-trio's nursery fixture does not report a task that fails after the test body).
ESCAPED: list[BaseException] = []


async def _run_with_server_tasks(conn: H1Connection, server: Server) -> None:
    """The connection, beside the keepalive sweeper, readiness watcher and timers
    Server.serve would run (until it ends)."""
    async with trio.open_nursery() as nursery:
        server.connections_nursery = nursery
        nursery.start_soon(server.keepalive.run)
        nursery.start_soon(server.readiness.run)
        nursery.start_soon(server.timers.run)
        await _run_recording_errors(conn)
        nursery.cancel_scope.cancel()


async def _run_recording_errors(conn: H1Connection) -> None:
    try:
        await conn.run()
    except Exception as exc:
        ESCAPED.append(exc)
        raise
    except BaseExceptionGroup as group:
        errors, _ = group.split(Exception)
        if errors is not None:
            ESCAPED.append(errors)
        raise


async def read_until(
    stream: trio.abc.ReceiveStream, marker: bytes, buffer: bytearray | None = None
) -> bytes:
    """Read until ``marker`` has arrived; return everything read (EOF first fails)."""
    data = buffer if buffer is not None else bytearray()
    while marker not in data:
        chunk = await stream.receive_some(65536)
        assert chunk, f"EOF before {marker!r}"
        data += chunk
    return bytes(data)


async def read_all(stream: trio.abc.ReceiveStream) -> bytes:
    """Read until EOF."""
    data = bytearray()
    while chunk := await stream.receive_some(65536):
        data += chunk
    return bytes(data)


async def websocket_client(
    stream: trio.abc.Stream, path: str, *, deflate: bool = False
) -> tuple[object, list[object]]:
    """Open a WebSocket over ``stream`` with a real wsproto client; return it and the
    handshake's events."""
    import wsproto
    import wsproto.events as ws_events
    from wsproto.extensions import PerMessageDeflate

    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    extensions = [PerMessageDeflate()] if deflate else []
    await stream.send_all(
        client.send(ws_events.Request(host="x", target=path, extensions=extensions))
    )
    events: list[object] = []
    while not any(isinstance(e, ws_events.AcceptConnection) for e in events):
        client.receive_data(await stream.receive_some(65536))
        events.extend(client.events())
    return client, events
