"""The cross-site WebSocket hijacking guard, through websockets and trio-websocket.

A handshake without ``Origin`` (not a browser) and a same-origin one are accepted; any other
origin, ``null`` included, gets 403 with the reason before the handler runs, unless the
route's or the server's allow-list names it (``"*"``: any).
"""

from __future__ import annotations

import ssl

import pytest
import trio
from conftest import require
from support.cli import start_cli, stop_process
from support.rawhttp import exchange, status_of
from trio_websocket import ConnectionRejected, open_websocket_url
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from rawstream import App, WebSocket

ALLOWED = "https://partner.example"


class Calls:
    """How many times each handler ran (a refused client must never reach one)."""

    def __init__(self) -> None:
        self.echo = 0
        self.partner = 0


def build(calls: Calls) -> App:
    app = App()

    @app.websocket("/ws/echo")
    async def echo(ws: WebSocket) -> None:
        calls.echo += 1
        async for message in ws:
            await ws.send(message)

    @app.websocket("/ws/partner", origins=[ALLOWED])
    async def partner(ws: WebSocket) -> None:
        calls.partner += 1
        async for message in ws:
            await ws.send(message)

    return app


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
async def port(start_server, calls: Calls) -> int:
    server = await start_server(build(calls))
    return server.port


def echo_once(url: str, origin: str | None, *, ssl_context: ssl.SSLContext | None = None) -> str:
    """Open ``url`` with websockets (sending ``origin`` when given), echo one message; on a
    refused handshake return ``"<status> <body>"`` instead."""
    try:
        with connect(
            url, origin=Origin(origin) if origin else None, ssl=ssl_context, proxy=None
        ) as ws:
            ws.send("ping")
            return str(ws.recv(timeout=5))
    except InvalidStatus as refused:
        response = refused.response
        return f"{response.status_code} {response.body.decode().strip()}"


async def test_no_origin_is_accepted(port: int, calls: Calls) -> None:
    """Clients that send no Origin (not browsers) pass: websockets and trio-websocket."""
    assert await trio.to_thread.run_sync(echo_once, f"ws://127.0.0.1:{port}/ws/echo", None) == (
        "ping"
    )
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws/echo") as ws:
        await ws.send_message("trio")
        assert await ws.get_message() == "trio"
    assert calls.echo == 2


@pytest.mark.parametrize(
    "origin",
    ["http://127.0.0.1:{port}", "HTTP://127.0.0.1:{port}"],
    ids=["exact", "scheme-case"],
)
async def test_same_origin_is_accepted(port: int, origin: str) -> None:
    """A page served by this server (same scheme, host and port as Host) may connect."""
    url = f"ws://127.0.0.1:{port}/ws/echo"
    assert await trio.to_thread.run_sync(echo_once, url, origin.format(port=port)) == "ping"


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://127.0.0.1:{other}",  # same host, another port: another origin
        "https://127.0.0.1:{port}",  # same host and port, another scheme
        "http://localhost:{port}",  # another host name for the same address
        "null",  # sandboxed iframes, file: pages
        "http://127.0.0.1:{port}/",  # not an origin at all
    ],
    ids=["foreign", "other-port", "other-scheme", "other-host", "null", "malformed"],
)
async def test_cross_origin_is_refused_before_the_handler(
    port: int, calls: Calls, origin: str
) -> None:
    """Any other origin gets 403 with the reason, and the handler never runs."""
    origin = origin.format(port=port, other=port + 1)
    url = f"ws://127.0.0.1:{port}/ws/echo"
    answer = await trio.to_thread.run_sync(echo_once, url, origin)
    assert answer == f"403 cross-origin WebSocket refused: origin {origin} is not allowed"
    assert calls.echo == 0


async def test_cross_origin_is_refused_trio_websocket(port: int, calls: Calls) -> None:
    """trio-websocket sees the same 403 (its Origin set as an extra header)."""
    with pytest.raises(ConnectionRejected) as refused:
        async with open_websocket_url(
            f"ws://127.0.0.1:{port}/ws/echo", extra_headers=[(b"origin", b"https://evil.example")]
        ):
            pass
    assert refused.value.status_code == 403
    assert refused.value.body is not None and b"https://evil.example" in refused.value.body
    assert calls.echo == 0


async def test_host_case_and_default_port_are_normalized(port: int) -> None:
    """Host compares case-insensitively, and port 80 is http's default on either side."""
    for host, origin in [
        ("Example.COM", "http://example.com:80"),
        ("example.com:80", "http://EXAMPLE.com"),
    ]:
        request = (
            f"GET /ws/echo HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        answer = await exchange(port, request, read_until_close=False)
        assert status_of(answer) == 101, (host, origin, answer)


async def test_two_origin_headers_are_refused(port: int, calls: Calls) -> None:
    """Two Origin headers are ambiguous: 403, whatever they say."""
    request = (
        f"GET /ws/echo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Origin: http://127.0.0.1:{port}\r\nOrigin: https://evil.example\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    answer = await exchange(port, request)
    assert status_of(answer) == 403 and answer.endswith(b"more than one Origin header\n")
    assert calls.echo == 0


async def test_route_allow_list(port: int, calls: Calls) -> None:
    """The route's origins= admits its partner there, and only there."""
    partner = f"ws://127.0.0.1:{port}/ws/partner"
    echo = f"ws://127.0.0.1:{port}/ws/echo"
    assert await trio.to_thread.run_sync(echo_once, partner, ALLOWED) == "ping"
    # Normalized like the Origin a browser sends: default port, scheme and host case.
    assert await trio.to_thread.run_sync(echo_once, partner, "HTTPS://Partner.Example:443") == (
        "ping"
    )
    assert (await trio.to_thread.run_sync(echo_once, partner, "https://other.example"))[:3] == (
        "403"
    )
    assert (await trio.to_thread.run_sync(echo_once, echo, ALLOWED))[:3] == "403"
    assert (calls.partner, calls.echo) == (2, 0)


async def test_server_allow_list(start_server, calls: Calls) -> None:
    """Config.ws_allowed_origins admits an origin on every WebSocket route."""
    server = await start_server(build(calls), ws_allowed_origins=("http://app.example:8080",))
    for path in ("/ws/echo", "/ws/partner"):
        url = f"ws://127.0.0.1:{server.port}{path}"
        assert await trio.to_thread.run_sync(echo_once, url, "http://app.example:8080") == "ping"
        refused = await trio.to_thread.run_sync(echo_once, url, "http://app.example:8081")
        assert refused.startswith("403 ")
    assert (calls.echo, calls.partner) == (1, 1)


async def test_star_allows_any_origin(start_server, calls: Calls) -> None:
    """An "*" on the server's list admits any origin, null included."""
    server = await start_server(build(calls), ws_allowed_origins=("*",))
    url = f"ws://127.0.0.1:{server.port}/ws/echo"
    for origin in ("https://evil.example", "null"):
        assert await trio.to_thread.run_sync(echo_once, url, origin) == "ping"


async def test_star_on_a_route(start_server, calls: Calls) -> None:
    """An "*" on one route's list admits any origin there, not elsewhere."""
    app = build(calls)

    @app.websocket("/ws/public", origins=["*"])
    async def public(ws: WebSocket) -> None:
        await ws.send("hello")

    server = await start_server(app)

    def hello(path: str) -> str:
        url = f"ws://127.0.0.1:{server.port}{path}"
        try:
            with connect(url, origin=Origin("https://anyone.example"), proxy=None) as ws:
                return str(ws.recv(timeout=5))
        except InvalidStatus as refused:
            return str(refused.response.status_code)

    assert await trio.to_thread.run_sync(hello, "/ws/public") == "hello"
    assert await trio.to_thread.run_sync(hello, "/ws/echo") == "403"


def test_bad_allow_lists_are_refused_at_registration() -> None:
    """A typo in an allow-list fails when the route is made, not silently at run time."""
    app = App()

    async def handler(ws: WebSocket) -> None:
        pass

    for bad in (["https://app.example/"], ["app.example"], ["null"]):
        with pytest.raises(ValueError):
            app.add_route("/ws", handler, kind="websocket", origins=bad)
    with pytest.raises(TypeError):
        app.add_route("/ws", handler, kind="websocket", origins="https://app.example")
    with pytest.raises(ValueError, match="WebSocket routes"):
        app.add_route("/plain", handler, origins=["https://app.example"])
    assert app.routes == []


async def test_tls_same_origin_is_https(start_server, calls: Calls) -> None:
    """Over TLS the page's origin is https://; http:// on the same host and port is another."""
    trustme = require("trustme", "TLS test certificates")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    server = await start_server(build(calls), ssl_context=server_context)
    url = f"wss://127.0.0.1:{server.port}/ws/echo"
    same = f"https://127.0.0.1:{server.port}"
    plain = f"http://127.0.0.1:{server.port}"
    assert (
        await trio.to_thread.run_sync(lambda: echo_once(url, same, ssl_context=client_context))
        == "ping"
    )
    assert (
        await trio.to_thread.run_sync(lambda: echo_once(url, plain, ssl_context=client_context))
    ).startswith("403 ")
    assert calls.echo == 1


# -- the demo, as `rawstream demo` ------------------------------------------------------------


def demo_answer(port: int, path: str, origin: str) -> str:
    """Open the demo's ``path`` with ``origin``: "open" when accepted, else the status."""
    try:
        with connect(f"ws://127.0.0.1:{port}{path}", origin=Origin(origin), proxy=None) as ws:
            if path == "/ws/echo":
                ws.send("x")
                assert ws.recv(timeout=5) == "x"
            return "open"
    except InvalidStatus as refused:
        return str(refused.response.status_code)


async def test_demo_refuses_a_foreign_origin_by_default() -> None:
    """`rawstream demo`: /ws/chat and /ws/echo refuse another site's page, serve their own."""
    process, port = start_cli("demo")
    try:
        for path in ("/ws/chat", "/ws/echo"):
            foreign = await trio.to_thread.run_sync(demo_answer, port, path, "https://evil.example")
            own = await trio.to_thread.run_sync(demo_answer, port, path, f"http://127.0.0.1:{port}")
            assert (path, foreign, own) == (path, "403", "open")
    finally:
        returncode = stop_process(process)
    assert returncode == 0


async def test_demo_allow_origin_admits_that_origin_only() -> None:
    """`rawstream demo --allow-origin ORIGIN`: that origin's pages may connect, no others."""
    process, port = start_cli("demo", "--allow-origin", "http://app.example:3000")
    try:
        for path in ("/ws/chat", "/ws/echo"):
            allowed = await trio.to_thread.run_sync(
                demo_answer, port, path, "http://app.example:3000"
            )
            other = await trio.to_thread.run_sync(demo_answer, port, path, "http://app.example")
            assert (path, allowed, other) == (path, "open", "403")
    finally:
        returncode = stop_process(process)
    assert returncode == 0
