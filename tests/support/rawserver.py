"""A raw TCP server for tests: it answers in exact bytes, for responses (or upstreams) no
well-behaved server would send.

``server = await start_raw_server(nursery, handler)`` listens on a free 127.0.0.1 port; for
each connection it records the time and the request head (with its closing blank line), then
runs ``await handler(stream, data)`` with everything read so far, and closes the connection
when the handler returns.  The client tests reach it as the ``raw_server`` fixture, the LLM
tests as ``raw_upstream``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

__all__ = ["RawHandler", "RawServer", "StartRawServer", "response_head", "start_raw_server"]

RawHandler = Callable[[trio.SocketStream, bytes], Awaitable[None]]


@dataclass
class RawServer:
    """What a raw server saw: each connection's request head and the time it was accepted."""

    port: int = 0
    heads: list[bytes] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base(self) -> str:
        """The ``/v1`` base URL (standing in for an OpenAI-style upstream)."""
        return self.url + "/v1"


#: What the ``raw_server`` and ``raw_upstream`` fixtures give: ``await start(handler)``.
StartRawServer = Callable[[RawHandler], Awaitable[RawServer]]


async def read_head(stream: trio.SocketStream) -> bytes:
    """Read until a request head has arrived (or the peer closed); return all that was read."""
    data = b""
    while b"\r\n\r\n" not in data and (chunk := await stream.receive_some(65536)):
        data += chunk
    return data


async def start_raw_server(nursery: trio.Nursery, handler: RawHandler) -> RawServer:
    """Serve ``handler`` on 127.0.0.1 (a free port) in ``nursery`` (see the module doc)."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    server = RawServer(port=listeners[0].socket.getsockname()[1])

    async def serve_one(stream: trio.SocketStream) -> None:
        async with stream:
            server.times.append(trio.current_time())
            data = await read_head(stream)
            head, blank, _ = data.partition(b"\r\n\r\n")
            server.heads.append(head + blank)
            await handler(stream, data)

    nursery.start_soon(trio.serve_listeners, serve_one, listeners)
    return server


def response_head(content_type: str = "text/event-stream", status: str = "200 OK") -> bytes:
    """A response head for a close-delimited body (no length, no chunking)."""
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nConnection: close\r\n\r\n"
    return head.encode()
