"""Faults from clients: 500 resets mid-stream leave nothing behind; malformed and oversized
requests (beyond tests/e2e/test_bad_input.py's table) get their status, crash nothing, and the
server keeps serving.  Loopback only, bounded."""

from __future__ import annotations

import json
import logging
import socket
import struct

import httpx
import pytest
import trio
from support.leaks import Baseline, wait_until_closed
from support.rawhttp import exchange, status_of
from support.testapp import Probes, build_app

from rawstream import App, Event, Request, SSEStream

CLIENTS = 500
BATCH = 50


async def reset_mid_stream(port: int) -> None:
    """Open a stream, read its first event, then close with RST (SO_LINGER 0)."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        await sock.connect(("127.0.0.1", port))
        await sock.send(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while b"id: 0" not in received:
            received += await sock.recv(65536)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def test_500_resets_leave_no_descriptors_tasks_or_handlers(start_server) -> None:
    """After 500 RSTs mid-stream: every handler's cleanup ran, no fds and no tasks remain."""
    app = App()
    started = cleaned = 0

    @app.sse("/stream")
    async def stream(request: Request, stream: SSEStream) -> None:
        nonlocal started, cleaned
        started += 1
        try:
            i = 0
            while True:
                await stream.send(Event("x" * 200, id=str(i)))
                i += 1
                if i % 20 == 0:
                    await trio.sleep(0.001)
        finally:
            cleaned += 1

    server = await start_server(app)
    baseline = await Baseline.take()  # the server's own tasks started and idle
    for _ in range(CLIENTS // BATCH):
        async with trio.open_nursery() as nursery:
            for _ in range(BATCH):
                nursery.start_soon(reset_mid_stream, server.port)
    await wait_until_closed(server)
    assert started == cleaned == CLIENTS  # (a handler's finally runs before its task ends)
    assert baseline.leaked() == (0, 0)  # no descriptors, no tasks
    assert server.statistics().connections == 0


# -- malformed and oversized requests ---------------------------------------------------------

MAX_BODY = 1000
POST = b"POST /echo HTTP/1.1\r\nHost: x\r\n"
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"
# A TLS 1.3 ClientHello's first bytes, as a browser sends them to https:// on the plain port.
TLS_CLIENT_HELLO = (
    bytes.fromhex("16030100f4010000f00303") + bytes(32) + bytes.fromhex("00000413011302010000c3")
)

REFUSED = {
    # request line
    "bad-method-token": (b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "space-in-target": (b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "control-in-target": (b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "http-0.9": (b"GET /\r\n\r\n", 400),
    "http2-preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    "tls-client-hello": (TLS_CLIENT_HELLO, 400),
    "binary-junk": (bytes(range(256)) * 4, 400),
    # header fields
    "space-in-header-name": (b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", 400),
    "space-before-colon": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A : v\r\n\r\n", 400),
    "nul-in-value": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    "cr-in-value": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400),
    "fold-on-first-field": (b"GET / HTTP/1.1\r\n folded\r\nHost: x\r\n\r\n", 400),
    "two-hosts": (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
    # body framing
    "negative-content-length": (POST + b"Content-Length: -1\r\n\r\n", 400),
    "non-numeric-content-length": (POST + b"Content-Length: abc\r\n\r\n", 400),
    "signed-content-length": (POST + b"Content-Length: +5\r\n\r\nhello", 400),
    "conflicting-content-lengths": (
        POST + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
    ),
    "content-length-list": (POST + b"Content-Length: 5, 6\r\n\r\nhello!", 400),
    "unknown-transfer-coding": (POST + b"Transfer-Encoding: gzip\r\n\r\n", 501),
    "chunked-twice": (POST + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 501),
    "bad-chunk-size": (CHUNKED + b"zz\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-size-overflow": (CHUNKED + b"f" * 40 + b"\r\nabc\r\n0\r\n\r\n", 400),
    "chunk-without-crlf": (CHUNKED + b"3\r\nabcXX0\r\n\r\n", 400),
    # body size: one byte over by Content-Length; a 4 GiB chunk announced, then streamed
    "content-length-one-over": (
        POST + f"Content-Length: {MAX_BODY + 1}\r\n\r\n".encode() + b"x" * (MAX_BODY + 1),
        413,
    ),
    "huge-chunk": (CHUNKED + b"100000000\r\n" + b"x" * (4 * MAX_BODY), 413),
}


@pytest.fixture
async def port(start_server) -> int:
    server = await start_server(build_app(Probes()), max_body_bytes=MAX_BODY)
    return server.port


async def still_serving(port: int) -> bool:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200


@pytest.mark.parametrize(("request_bytes", "status"), REFUSED.values(), ids=REFUSED)
async def test_malformed_request_gets_its_status(
    port: int, request_bytes: bytes, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Each malformed or oversized request gets one answer with its status and the connection
    closes (nothing after it is read as another request); nothing is logged as an error (no
    handler or connection crashed); the server then serves the next client."""
    caplog.set_level(logging.INFO, logger="rawstream")
    raw = await exchange(port, request_bytes)
    assert status_of(raw) == status
    assert raw.count(b"HTTP/1.1 ") == 1
    assert b"connection: close" in raw.lower()
    assert await still_serving(port)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


CLOSE = b"Connection: close\r\n"
TOLERATED = {
    # RFC 9112 5.2: a server may replace obs-fold by a space instead of refusing it.
    "obs-fold-in-a-value": (
        b"GET /info HTTP/1.1\r\nHost: x\r\nUser-Agent: spread\r\n  over lines\r\n"
        + CLOSE
        + b"\r\n",
        b'"agent":"spread over lines"',
    ),
    # RFC 9112 2.2: a recipient may take a lone LF for a line end.
    "bare-lf-line-ends": (
        b"GET /info HTTP/1.1\nHost: x\nUser-Agent: lf\nConnection: close\n\n",
        b'"agent":"lf"',
    ),
    # RFC 9110 8.6: repeated identical Content-Length values may be taken as one.
    "identical-content-lengths": (
        POST + b"Content-Length: 5\r\nContent-Length: 5\r\n" + CLOSE + b"\r\nhello",
        b"\r\n\r\nhello",
    ),
    "body-at-the-limit": (
        POST + f"Content-Length: {MAX_BODY}\r\n".encode() + CLOSE + b"\r\n" + b"x" * MAX_BODY,
        b"\r\n\r\n" + b"x" * MAX_BODY,
    ),
}


@pytest.mark.parametrize(("request_bytes", "expected"), TOLERATED.values(), ids=TOLERATED)
async def test_lenient_but_unambiguous_requests_are_served(
    port: int, request_bytes: bytes, expected: bytes
) -> None:
    """What the RFCs let a server accept is served, read one way only: a folded value is
    joined by a space, lone LFs end lines, identical Content-Lengths count once, and a body
    of exactly max_body_bytes passes."""
    raw = await exchange(port, request_bytes)
    assert status_of(raw) == 200
    assert raw.count(b"HTTP/1.1 ") == 1
    assert expected in raw
    if b"/info" in request_bytes:
        json.loads(raw.partition(b"\r\n\r\n")[2])  # a whole JSON body, nothing smuggled in
