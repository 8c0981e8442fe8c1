"""CORS on plain HTTP and SSE routes, through httpx and httpx-sse.

An allowed origin gets ``Access-Control-Allow-Origin`` (echoed, with ``Vary: Origin``; or
``*``), credentials and exposed headers as configured; a disallowed one is served without
CORS headers.  The server answers preflights itself: 204, or 403 with the reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from httpx_sse import aconnect_sse
from support.cli import start_cli, stop_process

from rawstream import App, Event, HTTPError, Request, Response
from rawstream.cors import CORS

APP = "https://app.example"
OTHER = "https://other.example"
ACAO = "access-control-allow-origin"


def build() -> App:
    app = App()

    @app.get("/data")
    async def data(request: Request) -> Response:
        return Response.json({"n": 1}, headers=[("x-total", "1")])

    @app.route("/items", methods=["GET", "POST"])
    async def items(request: Request) -> Response:
        return Response.json({"got": (await request.body()).decode()})

    @app.get("/denied")
    async def denied(request: Request) -> Response:
        raise HTTPError(401, "sign in first")

    @app.get("/download")
    async def download(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"chunk {i}\n".encode()

        return Response(chunks(), content_type="text/plain")

    @app.get("/own", cors=CORS(origins=(APP,)))
    async def own(request: Request) -> Response:
        return Response.text("mine", headers=[(ACAO, "https://chosen.example")])

    @app.get("/public", cors=CORS(origins=("*",), expose_headers=("x-total",)))
    async def public(request: Request) -> Response:
        return Response.text("anyone", headers=[("x-total", "7")])

    @app.get("/private", cors=CORS())
    async def private(request: Request) -> Response:
        return Response.text("same origin only")

    @app.get(
        "/account",
        cors=CORS(origins=(APP,), allow_credentials=True, expose_headers=("x-total", "x-page")),
    )
    async def account(request: Request) -> Response:
        return Response.json({"user": request.headers.get("cookie", "")})

    @app.sse("/events")
    async def events(request: Request) -> AsyncIterator[Event]:
        for i in range(3):
            yield Event(f"tick {i}", id=str(i))

    @app.sse("/events/closed")
    async def closed(request: Request) -> AsyncIterator[Event]:
        raise HTTPError(404, "no such channel")
        yield Event("never")

    @app.sse("/events/any", cors=CORS(origins=("*",), allow_credentials=True))
    async def any_credentialed(request: Request) -> AsyncIterator[Event]:
        yield Event("hello")

    return app


@pytest.fixture
async def base(start_server) -> str:
    server = await start_server(build(), cors=CORS(origins=(APP,), expose_headers=("x-total",)))
    return f"http://127.0.0.1:{server.port}"


async def get(url: str, origin: str | None = None, method: str = "GET", **kw) -> httpx.Response:
    headers = {"origin": origin} if origin else {}
    headers.update(kw.pop("headers", {}))
    async with httpx.AsyncClient() as client:
        return await client.request(method, url, headers=headers, **kw)


async def test_allowed_origin_is_echoed_with_vary(base: str) -> None:
    """The server's CORS: an allowed origin is echoed, Vary: Origin, exposed headers listed;
    no credentials header when credentials are off."""
    response = await get(base + "/data", APP)
    assert response.status_code == 200 and response.json() == {"n": 1}
    assert response.headers[ACAO] == APP
    assert response.headers["vary"] == "origin"
    assert response.headers["access-control-expose-headers"] == "x-total"
    assert "access-control-allow-credentials" not in response.headers


@pytest.mark.parametrize("origin", [OTHER, "null", None], ids=["other", "null", "none"])
async def test_other_origins_get_no_cors_headers(base: str, origin: str | None) -> None:
    """Another origin (or none) is served, without CORS headers (its page cannot read the
    answer), but still with Vary: Origin, so a cache keeps the answers apart."""
    response = await get(base + "/data", origin)
    assert response.status_code == 200
    assert ACAO not in response.headers
    assert "access-control-expose-headers" not in response.headers
    assert response.headers["vary"] == "origin"


async def test_errors_and_streamed_bodies_carry_the_headers(base: str) -> None:
    """An HTTPError the handler raises, and a streamed body, carry the CORS headers too."""
    denied = await get(base + "/denied", APP)
    assert (denied.status_code, denied.text) == (401, "sign in first\n")
    assert denied.headers[ACAO] == APP and denied.headers["vary"] == "origin"
    download = await get(base + "/download", APP)
    assert download.text == "chunk 0\nchunk 1\nchunk 2\n"
    assert download.headers[ACAO] == APP


async def test_star_is_static(base: str) -> None:
    """origins=("*",) without credentials: "*" on every answer, Origin or not, no Vary."""
    for origin in (OTHER, "null", None):
        response = await get(base + "/public", origin)
        assert response.headers[ACAO] == "*"
        assert response.headers["access-control-expose-headers"] == "x-total"
        assert "vary" not in response.headers


async def test_credentials_echo_the_origin(base: str) -> None:
    """allow_credentials: the origin is echoed (never "*") with Allow-Credentials: true."""
    response = await get(base + "/account", APP, headers={"cookie": "session=1"})
    assert response.json() == {"user": "session=1"}
    assert response.headers[ACAO] == APP
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["access-control-expose-headers"] == "x-total, x-page"
    assert response.headers["vary"] == "origin"
    refused = await get(base + "/account", OTHER)
    assert ACAO not in refused.headers
    assert "access-control-allow-credentials" not in refused.headers


async def test_a_route_overrides_the_server(base: str) -> None:
    """CORS() on a route turns the server's off there (no CORS headers, no Vary, and a
    preflight gets the usual 405, so the browser sends nothing); a handler's own header is
    kept."""
    private = await get(base + "/private", APP)
    assert ACAO not in private.headers
    assert "vary" not in private.headers
    preflight = await get(
        base + "/private", APP, "OPTIONS", headers={"access-control-request-method": "GET"}
    )
    assert (preflight.status_code, preflight.headers["allow"]) == (405, "GET, HEAD")
    assert ACAO not in preflight.headers
    own = await get(base + "/own", APP)
    assert own.headers.get_list(ACAO) == ["https://chosen.example"]


async def test_preflight_is_answered(base: str) -> None:
    """OPTIONS with Origin and Access-Control-Request-Method: 204, the route's methods, the
    allowed headers, Max-Age; then the actual request goes through on the same client."""
    async with httpx.AsyncClient() as client:
        preflight = await client.options(
            base + "/items",
            headers={
                "origin": APP,
                "access-control-request-method": "POST",
                "access-control-request-headers": "Content-Type,Authorization",
            },
        )
        actual = await client.post(
            base + "/items",
            content=b'{"a":1}',
            headers={"origin": APP, "content-type": "application/json"},
        )
    assert preflight.status_code == 204 and preflight.content == b""
    assert preflight.headers[ACAO] == APP
    assert preflight.headers["access-control-allow-methods"] == "GET, HEAD, POST"
    assert preflight.headers["access-control-allow-headers"] == (
        "content-type, last-event-id, authorization"
    )
    assert preflight.headers["access-control-max-age"] == "600"
    assert preflight.headers["vary"] == "origin"
    assert "access-control-allow-credentials" not in preflight.headers
    assert actual.json() == {"got": '{"a":1}'} and actual.headers[ACAO] == APP


async def test_preflight_with_credentials(base: str) -> None:
    """A credentialed route's preflight says Allow-Credentials and echoes the origin."""
    preflight = await get(
        base + "/account", APP, "OPTIONS", headers={"access-control-request-method": "GET"}
    )
    assert preflight.status_code == 204
    assert preflight.headers[ACAO] == APP
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert preflight.headers["access-control-allow-methods"] == "GET, HEAD"


@pytest.mark.parametrize(
    ("path", "origin", "method", "request_headers", "reason"),
    [
        ("/items", OTHER, "POST", "", f"origin {OTHER} may not read this resource"),
        ("/items", "null", "POST", "", "origin null may not read this resource"),
        ("/items", APP, "DELETE", "", "cross-origin DELETE is not allowed here"),
        ("/items", APP, "POST", "content-type, x-secret", "request header x-secret is not allowed"),
    ],
    ids=["origin", "null", "method", "header"],
)
async def test_preflight_is_refused_with_the_reason(
    base: str, path: str, origin: str, method: str, request_headers: str, reason: str
) -> None:
    """A preflight for a disallowed origin, method or header: 403 and why, no CORS headers
    (the browser then never sends the actual request)."""
    headers = {"access-control-request-method": method}
    if request_headers:
        headers["access-control-request-headers"] = request_headers
    response = await get(base + path, origin, "OPTIONS", headers=headers)
    assert (response.status_code, response.text) == (403, reason + "\n")
    assert ACAO not in response.headers


async def test_other_options_requests_are_unchanged(start_server, base: str) -> None:
    """OPTIONS that is no preflight, or for a path without CORS, gets 405 with Allow as
    before; an unknown path 404."""
    plain = await get(base + "/data", APP, "OPTIONS")
    assert (plain.status_code, plain.headers["allow"]) == (405, "GET, HEAD")
    unknown = await get(
        base + "/nowhere", APP, "OPTIONS", headers={"access-control-request-method": "GET"}
    )
    assert unknown.status_code == 404
    server = await start_server(build())  # no server-wide CORS: /data has none
    no_cors = await get(
        f"http://127.0.0.1:{server.port}/data",
        APP,
        "OPTIONS",
        headers={"access-control-request-method": "GET"},
    )
    assert (no_cors.status_code, no_cors.headers["allow"]) == (405, "GET, HEAD")
    assert ACAO not in no_cors.headers


async def test_sse_stream_carries_the_headers(base: str) -> None:
    """An SSE response (httpx-sse) carries CORS for an allowed origin, none for another."""
    async with httpx.AsyncClient() as client:
        for origin, expected in ((APP, APP), (OTHER, None)):
            async with aconnect_sse(
                client, "GET", base + "/events", headers={"origin": origin}
            ) as source:
                data = [event.data async for event in source.aiter_sse()]
                headers = source.response.headers
            assert data == ["tick 0", "tick 1", "tick 2"]
            assert headers.get(ACAO) == expected
            assert headers["vary"] == "origin"


async def test_sse_refusal_and_head_carry_the_headers(base: str) -> None:
    """An SSE handler's HTTPError before the stream opens, and a HEAD, carry CORS too."""
    refused = await get(base + "/events/closed", APP)
    assert (refused.status_code, refused.headers[ACAO]) == (404, APP)
    head = await get(base + "/events", APP, "HEAD")
    assert head.status_code == 200 and head.headers[ACAO] == APP
    assert head.headers["content-type"].startswith("text/event-stream")


async def test_sse_star_with_credentials_echoes_any_origin(base: str) -> None:
    """origins=("*",) with credentials: any origin is echoed (never "*", which browsers
    refuse with credentials), with Allow-Credentials; but never "null" (every sandboxed
    frame and file: page shares it)."""
    seen = {}
    for origin in (OTHER, "null"):
        async with (
            httpx.AsyncClient() as client,
            aconnect_sse(client, "GET", base + "/events/any", headers={"origin": origin}) as source,
        ):
            assert [event.data async for event in source.aiter_sse()] == ["hello"]
            seen[origin] = source.response.headers
    assert seen[OTHER][ACAO] == OTHER
    assert seen[OTHER]["access-control-allow-credentials"] == "true"
    assert ACAO not in seen["null"]
    assert "access-control-allow-credentials" not in seen["null"]


async def test_gzipped_sse_varies_on_both(start_server) -> None:
    """A gzipped SSE stream says Vary for both Accept-Encoding and Origin."""
    server = await start_server(build(), cors=CORS(origins=(APP,)), sse_gzip=True)
    async with (
        httpx.AsyncClient() as client,
        aconnect_sse(
            client, "GET", f"http://127.0.0.1:{server.port}/events", headers={"origin": APP}
        ) as source,
    ):
        assert [event.id async for event in source.aiter_sse()] == ["0", "1", "2"]
        headers = source.response.headers
    assert headers["content-encoding"] == "gzip"
    assert headers.get_list("vary") == ["accept-encoding", "origin"]
    assert headers[ACAO] == APP


def test_bad_settings_are_refused() -> None:
    """Malformed origins, null, or CORS on a WebSocket route fail when made."""
    for bad in (("https://app.example/",), ("null",), ("app.example",)):
        with pytest.raises(ValueError):
            CORS(origins=bad)
    with pytest.raises(TypeError):
        CORS(origins="https://app.example")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        CORS(max_age=-1)
    app = App()

    async def handler(ws: object) -> None:
        pass

    with pytest.raises(ValueError, match="origins="):
        app.add_route("/ws", handler, kind="websocket", cors=CORS(origins=(APP,)))
    assert CORS(origins=["https://a.example"]).origins == ("https://a.example",)  # type: ignore[arg-type]


async def test_cli_allow_origin_sets_cors() -> None:
    """`rawstream demo --allow-origin ORIGIN`: the demo's HTTP and SSE routes let that
    origin read them, and only that one."""
    process, port = start_cli("demo", "--allow-origin", APP)
    try:
        base = f"http://127.0.0.1:{port}"
        health = await get(base + "/healthz", APP)
        other = await get(base + "/healthz", OTHER)
        async with (
            httpx.AsyncClient() as client,
            aconnect_sse(
                client, "GET", base + "/stream?n=2&size=10", headers={"origin": APP}
            ) as source,
        ):
            ids = [event.id async for event in source.aiter_sse()]
            sse_headers = source.response.headers
        preflight = await get(
            base + "/publish", APP, "OPTIONS", headers={"access-control-request-method": "POST"}
        )
    finally:
        returncode = stop_process(process)
    assert health.headers[ACAO] == APP and ACAO not in other.headers
    assert ids == ["0", "1"] and sse_headers[ACAO] == APP
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-methods"] == "POST"
    assert returncode == 0
