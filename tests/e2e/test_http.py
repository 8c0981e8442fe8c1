"""Plain HTTP end to end, through httpx (a client no one here wrote) and raw sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio
import trio.testing
from support.rawhttp import exchange, status_of
from support.testapp import Probes, build_app


@pytest.fixture
async def base(start_server):
    server = await start_server(build_app(Probes()))
    return f"http://127.0.0.1:{server.port}"


async def test_json_route(base: str) -> None:
    """A plain route answers JSON with a Content-Length."""
    async with httpx.AsyncClient() as client:
        response = await client.get(base + "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["content-length"] == str(len(response.content))


async def test_request_attributes(base: str) -> None:
    """Method, decoded path, repeated query parameters, headers and client address."""
    async with httpx.AsyncClient() as client:
        response = await client.get(
            base + "/info?q=a&q=b&last_event_id=7", headers={"user-agent": "probe/1"}
        )
    assert response.json() == {
        "method": "GET",
        "path": "/info",
        "query": ["a", "b"],
        "client": "127.0.0.1",
        "last_event_id": "7",
        "agent": "probe/1",
    }


async def test_path_parameters(base: str) -> None:
    """A {name} segment is matched and handed to the handler."""
    async with httpx.AsyncClient() as client:
        response = await client.get(base + "/items/42")
    assert response.text == "item 42"


async def test_not_found_and_method_not_allowed(base: str) -> None:
    """The router answers 404, and 405 with Allow."""
    async with httpx.AsyncClient() as client:
        missing = await client.get(base + "/nowhere")
        wrong_method = await client.delete(base + "/healthz")
    assert missing.status_code == 404
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "GET, HEAD"


async def test_post_body(base: str) -> None:
    """A request body reaches the handler whole."""
    payload = b"x" * 200_000
    async with httpx.AsyncClient() as client:
        response = await client.post(base + "/echo", content=payload)
    assert response.content == payload


async def test_body_too_large(start_server) -> None:
    """A body over max_body_bytes gets 413."""
    server = await start_server(build_app(Probes()), max_body_bytes=1000)
    async with httpx.AsyncClient() as client:
        response = await client.post(f"http://127.0.0.1:{server.port}/echo", content=b"x" * 5000)
    assert response.status_code == 413


async def test_chunked_request_body_too_large(start_server) -> None:
    """A chunked body that grows past max_body_bytes gets 413."""
    server = await start_server(build_app(Probes()), max_body_bytes=1000)

    async def body():
        for _ in range(10):
            yield b"x" * 500

    async with httpx.AsyncClient() as client:
        response = await client.post(f"http://127.0.0.1:{server.port}/echo", content=body())
    assert response.status_code == 413


async def test_http_error_and_crash(base: str) -> None:
    """HTTPError gives its status; an exception gives 500; the server keeps serving."""
    async with httpx.AsyncClient() as client:
        teapot = await client.get(base + "/teapot")
        crash = await client.get(base + "/crash")
        after = await client.get(base + "/healthz")
    assert teapot.status_code == 418
    assert "teapot" in teapot.text
    assert crash.status_code == 500
    assert after.status_code == 200


async def test_streamed_body(base: str) -> None:
    """A Response built from an async iterator is streamed chunked."""
    async with (
        httpx.AsyncClient() as client,
        client.stream("GET", base + "/chunks?n=4") as response,
    ):
        assert response.headers["transfer-encoding"] == "chunked"
        text = (await response.aread()).decode()
    assert text == "".join(f"chunk {i}\n" for i in range(4))


async def test_keep_alive_reuses_the_connection(base: str) -> None:
    """Sequential requests from httpx share one TCP connection."""
    ports = set()
    async with httpx.AsyncClient() as client:
        for _ in range(5):
            async with client.stream("GET", base + "/healthz") as response:
                ports.add(response.extensions["network_stream"].get_extra_info("client_addr"))
                await response.aread()
    assert len(ports) == 1


async def test_head(base: str) -> None:
    """HEAD gets GET's headers and no body."""
    port = int(base.rsplit(":", 1)[1])
    raw = await exchange(port, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert status_of(raw) == 200
    assert b"content-length: 15" in head.lower()
    assert body == b""


async def test_pipelined_requests_answered_in_order(base: str) -> None:
    """Three pipelined requests in one write get three responses, in order."""
    port = int(base.rsplit(":", 1)[1])
    request = b"GET /items/%d HTTP/1.1\r\nHost: x\r\n\r\n"
    raw = await exchange(
        port,
        request % 1
        + request % 2
        + (request % 3).replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"),
    )
    assert raw.count(b"HTTP/1.1 200") == 3
    assert raw.index(b"item 1") < raw.index(b"item 2") < raw.index(b"item 3")


async def test_expect_100_continue(base: str) -> None:
    """The server sends 100 Continue when the handler asks for the body, then the response."""
    import trio

    port = int(base.rsplit(":", 1)[1])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = await stream.receive_some(1000)
        assert interim.startswith(b"HTTP/1.1 100 ")
        await stream.send_all(b"hello")
        final = b""
        while b"hello" not in final:
            final += await stream.receive_some(1000)
    assert final.startswith(b"HTTP/1.1 200 ")


async def test_connection_close_is_honoured(base: str) -> None:
    """A request with Connection: close gets its response and then EOF."""
    port = int(base.rsplit(":", 1)[1])
    raw = await exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(raw) == 200
    assert b"connection: close" in raw.lower()


async def test_http_1_0_client(base: str) -> None:
    """An HTTP/1.0 client gets a close-delimited streamed body (no chunked encoding)."""
    port = int(base.rsplit(":", 1)[1])
    raw = await exchange(port, b"GET /chunks?n=2 HTTP/1.0\r\n\r\n")
    assert b"transfer-encoding" not in raw.lower()
    assert raw.endswith(b"chunk 0\nchunk 1\n")


async def test_http_error_204_has_no_body(base: str) -> None:
    """HTTPError(204) is answered without a body (h11 forbids one), keeping the server healthy."""
    async with httpx.AsyncClient() as client:
        response = await client.get(base + "/nocontent")
        after = await client.get(base + "/healthz")
    assert response.status_code == 204
    assert response.content == b""
    assert after.status_code == 200


async def test_head_on_streamed_body_does_not_stream(base: str) -> None:
    """HEAD on a route with a streamed body gets the head alone, and the connection goes on."""
    port = int(base.rsplit(":", 1)[1])
    raw = await exchange(
        port,
        b"HEAD /chunks HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert raw.count(b"HTTP/1.1 200 OK") == 2
    assert b"chunk 0" not in raw
    assert raw.endswith(b'{"status":"ok"}')


async def test_head_is_not_allowed_on_websocket_routes(base: str) -> None:
    """A WebSocket route answers only GET (RFC 6455 section 4.1): HEAD gets 405."""
    port = int(base.rsplit(":", 1)[1])
    raw = await exchange(port, b"HEAD /ws/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(raw) == 405
    assert b"allow: GET" in raw


async def test_204_response_has_no_content_length(base: str) -> None:
    """A 204 Response goes out without Content-Length or body (RFC 9110 section 8.6)."""
    port = int(base.rsplit(":", 1)[1])
    raw = await exchange(
        port,
        b"POST /accepted-quietly HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 0\r\nConnection: close\r\n\r\n",
    )
    assert status_of(raw) == 204
    assert b"content-length" not in raw.lower()
    assert raw.endswith(b"\r\n\r\n")


async def test_unanswered_expect_100_continue_closes(base: str) -> None:
    """A handler that ignores a 100-continue body: the response says close, and it closes.

    (Otherwise a body the client might still send would be read as the next request.)"""
    port = int(base.rsplit(":", 1)[1])
    raw = await exchange(
        port,
        b"POST /accepted-quietly HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n"
        b"Expect: 100-continue\r\n\r\n",
    )
    assert status_of(raw) == 204
    assert b"connection: close" in raw.lower()


async def test_invalid_response_header_gets_500(base: str) -> None:
    """A handler's header value with CR/LF is refused: 500, no header injection."""
    async with httpx.AsyncClient() as client:
        response = await client.get(base + "/bad-header")
        after = await client.get(base + "/healthz")
    assert response.status_code == 500
    assert "x-injected" not in response.headers
    assert after.status_code == 200


async def test_a_started_body_is_closed_when_the_client_left_before_the_head(start_server) -> None:
    """A handler may start its body generator before returning it (a relay connects upstream
    first); if the client is already gone when the head would be sent, the generator is still
    closed, so what it holds (an upstream connection) is released at once."""
    from rawstream import App, Request, Response

    closed = trio.Event()
    client_left = trio.Event()
    kept: list[AsyncIterator[bytes]] = []  # a live reference: garbage collection must not
    # be what closes it (trio's finalizer would, some time later)

    async def upstream_chunks() -> AsyncIterator[bytes]:
        try:
            yield b""  # connected upstream
            yield b"data"
            await trio.sleep_forever()
        finally:
            closed.set()

    app = App()

    @app.get("/primed")
    async def primed(request: Request) -> Response:
        chunks = upstream_chunks()
        kept.append(chunks)
        await chunks.__anext__()
        with trio.CancelScope(shield=True):  # returns even though the client has left
            await client_left.wait()
        return Response(chunks, content_type="text/plain")

    server = await start_server(app)
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    await stream.send_all(b"GET /primed HTTP/1.1\r\nhost: x\r\n\r\n")
    await stream.aclose()
    await trio.testing.wait_all_tasks_blocked(0.05)  # the server has read the EOF
    client_left.set()
    with trio.fail_after(5):
        await closed.wait()


async def test_a_handler_is_cancelled_when_its_client_leaves(start_server) -> None:
    """A plain handler still waiting to answer (a relay waiting for its upstream) is cancelled
    as soon as the client closes the connection, and its cleanup runs."""
    from rawstream import App, Request, Response

    started = trio.Event()
    cleaned_up = trio.Event()
    app = App()

    @app.get("/slow")
    async def slow(request: Request) -> Response:
        started.set()
        try:
            await trio.sleep_forever()
        finally:
            cleaned_up.set()
        return Response.text("never")

    server = await start_server(app)
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    await stream.send_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
    with trio.fail_after(5):
        await started.wait()
        await stream.aclose()
        await cleaned_up.wait()
    async with httpx.AsyncClient() as client:  # and the server serves on
        response = await client.get(f"http://127.0.0.1:{server.port}/nope")
    assert response.status_code == 404
