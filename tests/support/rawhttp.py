"""Raw-socket helpers: sending what no well-behaved client would send, and a free port."""

from __future__ import annotations

import socket

import trio


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (and that nothing listens on: a
    server to start there, or a connection to be refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def exchange(
    port: int, data: bytes, *, read_until_close: bool = True, limit: float = 5.0
) -> bytes:
    """Send ``data`` to 127.0.0.1:``port`` and return everything read until the server closes
    (failing after ``limit`` seconds if it does not), or, without ``read_until_close``, until
    a response head has arrived (or ``limit`` has passed)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        received = bytearray()
        with trio.fail_after(limit) if read_until_close else trio.move_on_after(limit):
            while True:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                received += chunk
                if not read_until_close and b"\r\n\r\n" in received:
                    break
        return bytes(received)


def status_of(response: bytes) -> int:
    """The status code of the first response in ``response``."""
    return int(response.split(b" ", 2)[1])


def websocket_upgrade(path: str) -> bytes:
    """A valid WebSocket upgrade request for ``path``, as raw bytes (no compression offered)."""
    return (
        f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
