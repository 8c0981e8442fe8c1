"""Server-Sent Events end to end, through httpx-sse."""

from __future__ import annotations

import httpx
import pytest
import trio
from httpx_sse import aconnect_sse
from support.testapp import Probes, build_app

from rawstream import App, Event, Request, SlowConsumer, SSEStream


@pytest.fixture
def probes() -> Probes:
    return Probes()


@pytest.fixture
async def base(start_server, probes: Probes) -> str:
    server = await start_server(build_app(probes))
    return f"http://127.0.0.1:{server.port}"


async def test_events_with_ids_and_types(base: str) -> None:
    """Events arrive in order with their ids and types, and the stream ends cleanly."""
    async with (
        httpx.AsyncClient() as client,
        aconnect_sse(client, "GET", base + "/sse/count?n=3") as source,
    ):
        assert source.response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert source.response.headers["cache-control"] == "no-cache"
        assert source.response.headers["x-accel-buffering"] == "no"
        events = [(e.event, e.id, e.data) async for e in source.aiter_sse()]
    assert events == [("count", str(i), f"event {i}") for i in (1, 2, 3)]


async def test_last_event_id_resumes(base: str) -> None:
    """A client sending Last-Event-ID gets the events after it."""
    async with (
        httpx.AsyncClient() as client,
        aconnect_sse(
            client, "GET", base + "/sse/count?n=2", headers={"Last-Event-ID": "10"}
        ) as source,
    ):
        ids = [e.id async for e in source.aiter_sse()]
    assert ids == ["11", "12"]


async def test_multiline_data(base: str) -> None:
    """Data with CR, LF and CRLF arrives as LF-joined lines."""
    async with (
        httpx.AsyncClient() as client,
        aconnect_sse(client, "GET", base + "/sse/multiline") as source,
    ):
        events = [e async for e in source.aiter_sse()]
    assert [e.data for e in events] == ["line one\nline two\nline three\nline four"]


async def test_generator_form(base: str) -> None:
    """An async generator handler may yield plain strings and Events."""
    async with (
        httpx.AsyncClient() as client,
        aconnect_sse(client, "GET", base + "/sse/finite-generator") as source,
    ):
        events = [(e.event, e.data) async for e in source.aiter_sse()]
    assert events == [("message", "plain string"), ("typed", "with type")]


async def test_handler_may_refuse_before_first_event(base: str) -> None:
    """An SSE handler raising HTTPError before sending anything answers that status."""
    async with httpx.AsyncClient() as client:
        refused = await client.get(base + "/sse/private")
        async with aconnect_sse(
            client, "GET", base + "/sse/private", headers={"authorization": "Bearer ok"}
        ) as source:
            allowed = [e.data async for e in source.aiter_sse()]
    assert refused.status_code == 401
    assert allowed == ["secret"]


async def test_client_disconnect_cancels_handler(base: str, probes: Probes) -> None:
    """A client that goes away cancels its SSE handler, and its finally block runs."""
    async with (
        httpx.AsyncClient() as client,
        aconnect_sse(client, "GET", base + "/sse/forever") as source,
    ):
        async for event in source.aiter_sse():
            if event.id == "3":
                break
    with trio.fail_after(5):
        await probes.cleaned_up.wait()
    assert probes.handler_cancelled


async def test_client_disconnect_closes_generator(base: str, probes: Probes) -> None:
    """A generator handler holding a resource is closed (aclosing) when the client leaves."""
    async with (
        httpx.AsyncClient() as client,
        aconnect_sse(client, "GET", base + "/sse/generator") as source,
    ):
        async for event in source.aiter_sse():
            if event.id == "2":
                break
    with trio.fail_after(5):
        await probes.resource_released.wait()


async def test_other_clients_unaffected_by_disconnect(base: str, probes: Probes) -> None:
    """While one stream is abandoned, another client still gets its full stream."""
    async with httpx.AsyncClient() as client:
        async with aconnect_sse(client, "GET", base + "/sse/forever") as source:
            async for _ in source.aiter_sse():
                break
        async with aconnect_sse(client, "GET", base + "/sse/count?n=50") as source:
            ids = [e.id async for e in source.aiter_sse()]
    assert ids == [str(i) for i in range(1, 51)]


async def test_refusing_with_204(base: str) -> None:
    """An SSE handler may answer 204 (EventSource stops reconnecting)."""
    async with httpx.AsyncClient() as client:
        response = await client.get(base + "/sse/stop")
    assert response.status_code == 204
    assert response.content == b""


async def test_head_on_sse_route(base: str, probes: Probes) -> None:
    """HEAD on an SSE route gets the SSE head at once; the handler does not run."""
    from support.rawhttp import exchange

    port = int(base.rsplit(":", 1)[1])
    raw = await exchange(
        port, b"HEAD /sse/forever HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert b"content-type: text/event-stream; charset=utf-8" in raw
    assert raw.endswith(b"\r\n\r\n")
    assert not probes.started.is_set()


async def test_concurrent_first_sends_open_once(base: str) -> None:
    """Two tasks sending the first events at once: one response head, both events."""
    async with (
        httpx.AsyncClient() as client,
        aconnect_sse(client, "GET", base + "/sse/two-senders") as source,
    ):
        ids = sorted([e.id async for e in source.aiter_sse()])
    assert ids == ["a", "b"]


@pytest.fixture
async def gzip_base(start_server) -> str:
    app = App()

    @app.sse("/zipped", compress=True)
    async def zipped(request: Request, stream: SSEStream) -> None:
        for i in range(int(request.query.get("n", "20"))):
            await stream.send(Event(f'{{"token":"word{i}","index":{i}}}', id=str(i)))
        if request.query.get("hold"):
            await trio.sleep_forever()

    @app.sse("/dropping", compress=True, slow_consumer=SlowConsumer.DROP_OLDEST)
    async def dropping(request: Request, stream: SSEStream) -> None:
        await stream.send("x")

    server = await start_server(app)
    return f"http://127.0.0.1:{server.port}"


async def test_gzip_stream_for_clients_that_accept_it(gzip_base: str) -> None:
    """With Accept-Encoding: gzip the stream is gzip-encoded, and events arrive intact."""
    async with (
        httpx.AsyncClient() as client,
        aconnect_sse(client, "GET", gzip_base + "/zipped") as source,
    ):
        assert source.response.headers["content-encoding"] == "gzip"
        assert source.response.headers["vary"] == "accept-encoding"
        ids = [e.id async for e in source.aiter_sse()]
    assert ids == [str(i) for i in range(20)]


async def test_gzip_events_decode_before_the_stream_ends(gzip_base: str) -> None:
    """Each event is flushed: the first decodes while the stream is still open."""
    import zlib

    port = int(gzip_base.rsplit(":", 1)[1])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(
            b"GET /zipped?n=1&hold=1 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"
        )
        raw = b""
        with trio.fail_after(5):
            while b"\r\n\r\n" not in raw or not raw.split(b"\r\n\r\n", 1)[1].endswith(b"\r\n"):
                raw += await stream.receive_some(65536)
        head, body = raw.split(b"\r\n\r\n", 1)
        size, _, rest = body.partition(b"\r\n")
        chunk = rest[: int(size, 16)]
        decoded = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(chunk)
    assert b"content-encoding: gzip" in head
    assert decoded == b'id: 0\ndata: {"token":"word0","index":0}\n\n'


async def test_no_gzip_without_accept_encoding_or_when_dropping(gzip_base: str) -> None:
    """Identity for clients that do not accept gzip, and for DROP_OLDEST streams."""
    async with httpx.AsyncClient(headers={"accept-encoding": "identity"}) as client:
        plain = await client.get(gzip_base + "/zipped?n=2")
    async with httpx.AsyncClient() as client:
        dropping = await client.get(gzip_base + "/dropping")
    assert "content-encoding" not in plain.headers
    assert plain.text.startswith("id: 0\n")
    assert "content-encoding" not in dropping.headers


async def test_tight_loop_of_large_events_keeps_a_reading_client(start_server) -> None:
    """A handler sending large events in a loop that never blocks fills the outbox faster
    than one writer turn per millisecond drains it: the server must let the writer run
    before the DISCONNECT policy could take a client that reads for a slow one."""
    app = App()

    @app.sse("/big", slow_consumer=SlowConsumer.DISCONNECT)
    async def big(request: Request, stream: SSEStream) -> None:
        for i in range(300):
            await stream.send(Event(f"{i} " + "x" * 2048))

    server = await start_server(app)
    async with (
        httpx.AsyncClient() as client,
        aconnect_sse(client, "GET", f"http://127.0.0.1:{server.port}/big") as source,
    ):
        received = [int(e.data.split()[0]) async for e in source.aiter_sse()]
    assert received == list(range(300))
    assert server.slow_consumers_disconnected == 0
