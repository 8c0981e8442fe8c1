"""Benchmark FLOOR: plain Trio sockets, no HTTP/WebSocket library (what Python on Trio can do).

``trio.serve_tcp`` plus minimal parsing: read to the blank line, take the request line's path
and query (and Sec-WebSocket-Key for a 101).  Every event is encoded ONCE (SSE bytes or a
whole unmasked WS text frame) and the same bytes object is appended to every subscriber's
pending list; each subscriber has ONE writer task that drains the whole list into a single
``send_all(b"".join(pending))``, woken through a ParkingLot.  A reader task per subscriber
notices the client leaving.  /sse/stream sends ~64 KiB per ``send_all``; /sse/tokens one
``send_all`` per token, sleeping (``trio.sleep_until``) until each is due.  /healthz and
/publish keep the connection alive, unless the request head has the line
``Connection: close`` (any case; no other header is parsed): then the answer says so and the
connection closes.  SSE bodies are close-delimited (no chunking).
"""

from __future__ import annotations

import base64
import hashlib
import json
import signal
from functools import partial
from urllib.parse import parse_qsl

import trio
from common import (
    fanout_payload,
    parse_args,
    publish_params,
    stream_params,
    stream_payload,
    token_params,
    token_payload,
)

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SSE_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            b"connection: close\r\n\r\n")
WS_PATHS = ("/ws/echo", "/ws/fanout", "/ws/publish")
Broken = (trio.BrokenResourceError, trio.ClosedResourceError)


class Sub:
    """A fan-out subscriber: shared event bytes waiting for its writer task."""

    __slots__ = ("buf", "closing", "lot", "pending")

    def __init__(self, buf: bytearray | None = None) -> None:
        self.pending: list[bytes] = []
        self.buf = buf  # WS: bytes received after the handshake
        self.lot = trio.lowlevel.ParkingLot()
        self.closing = False

    def push(self, data: bytes) -> None:
        self.pending.append(data)
        self.lot.unpark()


SSE_SUBS: set[Sub] = set()
WS_SUBS: set[Sub] = set()


def http(status: str, body: bytes, ctype: str = "text/plain", close: bool = False) -> bytes:
    connection = "connection: close\r\n" if close else ""
    return (f"HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {len(body)}"
            f"\r\n{connection}\r\n").encode() + body


HEALTHZ, HEALTHZ_CLOSE = http("200 OK", b"ok"), http("200 OK", b"ok", close=True)


def frame(payload: bytes, opcode: int = 1) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 65536:
        return bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big") + payload


async def read_frame(stream: trio.SocketStream, buf: bytearray) -> tuple[int, bytes]:
    """One masked client frame: (opcode, payload); opcode 8 (close) on EOF."""
    async def need(k: int) -> None:
        while len(buf) < k:
            data = await stream.receive_some(65536)
            if not data:
                raise EOFError
            buf.extend(data)
    try:
        await need(2)
        n, pos = buf[1] & 0x7F, 2
        if n >= 126:
            pos = 4 if n == 126 else 10
            await need(pos)
            n = int.from_bytes(buf[2:pos], "big")
        await need(pos + 4 + n)
    except EOFError:
        return 8, b""
    opcode, mask, data = buf[0] & 0x0F, bytes(buf[pos:pos + 4]), bytes(buf[pos + 4:pos + 4 + n])
    del buf[:pos + 4 + n]
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return opcode, (int.from_bytes(data, "big") ^ key).to_bytes(n, "big")


async def writer(stream: trio.SocketStream, sub: Sub, scope: trio.CancelScope) -> None:
    """The subscriber's only writer: everything pending goes out in one send_all."""
    try:
        while sub.pending or not sub.closing:  # after a close frame: flush, then stop
            if not sub.pending:
                await sub.lot.park()
            data, sub.pending = b"".join(sub.pending), []
            await stream.send_all(data)
    except Broken:
        pass
    finally:
        scope.cancel()


async def sse_reader(stream: trio.SocketStream, sub: Sub, scope: trio.CancelScope) -> None:
    try:
        while await stream.receive_some(4096):
            pass
    except Broken:
        pass
    scope.cancel()


async def ws_reader(stream: trio.SocketStream, sub: Sub, scope: trio.CancelScope) -> None:
    """Answers pings and a close through the writer; stops the writer on a dead socket."""
    try:
        while True:
            opcode, payload = await read_frame(stream, sub.buf)
            if opcode == 8:
                sub.closing = True
                return sub.push(frame(payload, 8))
            if opcode == 9:
                sub.push(frame(payload, 10))
    except Broken:
        scope.cancel()


async def subscribe(stream: trio.SocketStream, subs: set[Sub], sub: Sub, first: bytes) -> None:
    subs.add(sub)
    try:
        await stream.send_all(first)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer, stream, sub, nursery.cancel_scope)
            reader = ws_reader if subs is WS_SUBS else sse_reader
            nursery.start_soon(reader, stream, sub, nursery.cancel_scope)
    finally:
        subs.discard(sub)


async def publish(subs: set[Sub], query: dict[str, str], encode) -> bytes:
    n, size, burst = publish_params(query)
    count = len(subs)
    for i in range(n):
        data = encode(fanout_payload(i, size))
        for sub in subs:
            sub.push(data)
        if (i + 1) % burst == 0:
            await trio.sleep(0)  # noqa: ASYNC115 - the contract's yield
    return json.dumps({"published": n, "subscribers": count}).encode()


async def sse_stream(stream: trio.SocketStream, query: dict[str, str]) -> None:
    n, size = stream_params(query)
    per_batch = max(65536 // (size + 8), 1)
    await stream.send_all(SSE_HEAD)
    for start in range(0, n, per_batch):
        batch = "".join(f"data: {stream_payload(i, size)}\n\n"
                        for i in range(start, min(start + per_batch, n)))
        await stream.send_all(batch.encode())


async def sse_tokens(stream: trio.SocketStream, query: dict[str, str]) -> None:
    n, size, rate, start_us, delay = token_params(query)
    start = trio.current_time() + delay
    await stream.send_all(SSE_HEAD)
    for seq in range(n):
        await trio.sleep_until(start + seq / rate)
        await stream.send_all(f"data: {token_payload(seq, size, start_us, rate)}\n\n".encode())


async def websocket(stream: trio.SocketStream, path: str, key: bytes, buf: bytearray) -> None:
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    await stream.send_all(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
                          b"connection: Upgrade\r\nsec-websocket-accept: " + accept + b"\r\n\r\n")
    if path == "/ws/fanout":
        return await subscribe(stream, WS_SUBS, Sub(buf), frame(b"ready"))
    while True:
        opcode, payload = await read_frame(stream, buf)
        if opcode == 8:
            return await stream.send_all(frame(payload, 8))
        if opcode == 9:
            await stream.send_all(frame(payload, 10))
        elif path == "/ws/echo" and opcode in (1, 2):
            await stream.send_all(frame(payload, opcode))
        elif path == "/ws/publish" and opcode == 1:
            query = dict(zip(("n", "size", "burst"), payload.decode().split(), strict=False))
            await stream.send_all(frame(await publish(WS_SUBS, query, lambda p: frame(p.encode()))))


async def handle(stream: trio.SocketStream) -> None:
    buf = bytearray()
    try:
        while True:
            while (end := buf.find(b"\r\n\r\n")) < 0:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buf.extend(data)
            raw = bytes(buf[:end])
            head = raw.split(b"\r\n")
            del buf[:end + 4]
            method, target = head[0].decode("latin-1").split(" ")[:2]
            path, _, qs = target.partition("?")
            query = dict(parse_qsl(qs))
            if path in WS_PATHS:
                headers = dict(line.split(b":", 1) for line in head[1:] if b":" in line)
                key = {k.strip().lower(): v.strip() for k, v in headers.items()}
                return await websocket(stream, path, key[b"sec-websocket-key"], buf)
            if path == "/sse/fanout":
                return await subscribe(stream, SSE_SUBS, Sub(), SSE_HEAD + b"retry: 1000\n\n")
            if path == "/sse/stream":
                return await sse_stream(stream, query)
            if path == "/sse/tokens":
                return await sse_tokens(stream, query)
            close = b"\r\nconnection: close" in raw.lower()
            if path == "/healthz":
                await stream.send_all(HEALTHZ_CLOSE if close else HEALTHZ)
            elif path == "/publish" and method == "POST":
                body = await publish(SSE_SUBS, query, lambda p: f"data: {p}\n\n".encode())
                await stream.send_all(http("200 OK", body, "application/json", close))
            else:
                await stream.send_all(http("404 Not Found", b"not found", close=close))
            if close:
                return
    except* (*Broken, ValueError, KeyError):  # a client that left, or a malformed request
        pass
    finally:
        await stream.aclose()


async def main(port: int) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(trio.serve_tcp, handle, port, host="127.0.0.1"))
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


if __name__ == "__main__":
    trio.run(main, parse_args(__doc__.splitlines()[0]).port)
