"""Bad input gets its status or close code, and the server keeps serving everyone else."""

from __future__ import annotations

import httpx
import pytest
import trio
from support.rawhttp import exchange, status_of, websocket_upgrade
from support.testapp import Probes, build_app

UPGRADE = websocket_upgrade("/ws/echo")


@pytest.fixture
async def port(start_server) -> int:
    server = await start_server(build_app(Probes()), max_head_bytes=4096)
    return server.port


async def still_serving(port: int) -> bool:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n", 400),
        (b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET /healthz HTTP/1.1\r\n\r\n", 400),  # HTTP/1.1 without Host
        (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
            b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
        ),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n", 431),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n", 413),
        (b"GET /ws/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 426),
    ],
    ids=[
        "garbage",
        "bad-header",
        "http2",
        "no-host",
        "cl-and-te",
        "huge-header",
        "huge-body",
        "plain-to-ws",
    ],
)
async def test_bad_request_status(port: int, request_bytes: bytes, status: int) -> None:
    """Each malformed request gets its status, then the server still serves others."""
    raw = await exchange(port, request_bytes)
    assert status_of(raw) == status
    assert b"/smuggled" not in raw and raw.count(b"HTTP/1.1 ") == 1
    assert await still_serving(port)


async def test_oversized_head_in_pieces(port: int) -> None:
    """A head that trickles in past the limit gets 431 (h11's incremental limit)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        for _ in range(10):
            await stream.send_all(b"X-Pad: " + b"p" * 1000 + b"\r\n")
        response = await stream.receive_some(1000)
    assert status_of(response) == 431


async def test_wrong_websocket_version(port: int) -> None:
    """Another Sec-WebSocket-Version gets 426 naming version 13 (RFC 6455 section 4.4)."""
    raw = await exchange(port, UPGRADE.replace(b"Version: 13", b"Version: 8"))
    assert status_of(raw) == 426
    assert b"sec-websocket-version: 13" in raw.lower()


async def test_missing_websocket_key(port: int) -> None:
    """An upgrade without Sec-WebSocket-Key gets 400."""
    raw = await exchange(
        port, UPGRADE.replace(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", b"")
    )
    assert status_of(raw) == 400


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x81\x05hello", 1002),  # unmasked client frame
        (b"\xf1\x80\x00\x00\x00\x00", 1002),  # reserved bits set
        (b"\x81\x82\x00\x00\x00\x00\xc3\x28", 1007),  # invalid UTF-8 in a text frame
    ],
    ids=["unmasked", "reserved-bits", "bad-utf8"],
)
async def test_invalid_frame_gets_close_code(port: int, frame: bytes, code: int) -> None:
    """An invalid frame gets a close frame with the right code before TCP closes."""
    raw = await exchange(port, UPGRADE + frame)
    head, _, frames = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert frames[0] == 0x88  # FIN + close
    assert int.from_bytes(frames[2:4], "big") == code
    assert await still_serving(port)
