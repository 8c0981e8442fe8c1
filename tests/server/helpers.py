"""Run one server-side Connection over an in-memory stream, with no sockets."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from rawstream import App, Config, Server
from rawstream.server.connection import Connection


def connect(
    nursery: trio.Nursery, app: App, *, lockstep: bool = False, **config: Any
) -> tuple[trio.abc.Stream, Connection]:
    """Start a Connection serving ``app``; return the client's end of the stream and it."""
    if lockstep:
        client, server_side = trio.testing.lockstep_stream_pair()
    else:
        client, server_side = trio.testing.memory_stream_pair()
    settings = Config(**config)
    conn = Connection(server_side, ("test-client", 1), app, settings, Server(app, settings))
    nursery.start_soon(conn.run)
    return client, conn


async def read_until(
    stream: trio.abc.ReceiveStream, marker: bytes, buffer: bytearray | None = None
) -> bytes:
    """Read until ``marker`` has arrived; return everything read."""
    data = buffer if buffer is not None else bytearray()
    while marker not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        data += chunk
    return bytes(data)


async def read_all(stream: trio.abc.ReceiveStream) -> bytes:
    """Read until EOF."""
    data = bytearray()
    while chunk := await stream.receive_some(65536):
        data += chunk
    return bytes(data)
