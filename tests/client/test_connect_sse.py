"""connect_sse: one stream from a real rawstream server (and a raw one for odd bytes)."""

from __future__ import annotations

import json
import ssl

import h11
import pytest
import trio
import trio.testing
from conftest import require
from hypothesis import given, settings
from hypothesis import strategies as st
from support.rawhttp import free_port
from support.rawserver import response_head, start_raw_server

from rawstream.client import (
    ServerSentEvent,
    SSEClientError,
    SSEConnectionError,
    SSEEventTooLargeError,
    SSEResponseError,
    connect_sse,
)
from rawstream.core import EventTooLargeError

from .conftest import Seen, client_app


async def test_events_arrive_with_types_and_ids(base: str, seen: Seen) -> None:
    """Events arrive in order with their type, data and id, and the stream then ends."""
    with trio.fail_after(5):
        async with connect_sse(base + "/count?n=3") as response:
            assert response.status == 200
            assert response.header("content-type") == "text/event-stream; charset=utf-8"
            events = [event async for event in response.events()]
            assert response.last_event_id == "3"
    assert events == [
        ServerSentEvent(event="count", data=f"event {i}", id=str(i)) for i in (1, 2, 3)
    ]


async def test_request_headers(base: str, seen: Seen) -> None:
    """The request asks for an event stream, uncached, and no content encoding."""
    async with connect_sse(base + "/count?n=1", headers={"X-Token": "t"}) as response:
        _ = [event async for event in response]
    (request,) = seen.requests
    assert request.headers.get("accept") == "text/event-stream"
    assert request.headers.get("cache-control") == "no-cache"
    assert request.headers.get("x-token") == "t"
    assert request.headers.get("host") == base.removeprefix("http://")
    assert request.headers.get("accept-encoding") is None
    assert request.headers.get("last-event-id") is None


async def test_last_event_id_is_sent_and_carried(base: str, seen: Seen) -> None:
    """``last_event_id`` goes out as Last-Event-ID; the server resumes after it."""
    async with connect_sse(base + "/count?n=2", last_event_id="10") as response:
        ids = [event.id async for event in response.events()]
    assert seen.last_event_ids == ["10"]
    assert ids == ["11", "12"]


async def test_multiline_data_and_json(base: str) -> None:
    """CR, LF and CRLF in data arrive as LF; json() parses the data."""
    async with connect_sse(base + "/multiline") as response:
        first, second = [event async for event in response.events()]
    assert first.data == "line one\nline two\nline three\nline four"
    assert first.id == "m1"
    assert second.event == "json" and second.json() == {"answer": 42}
    assert second.id == "m1"  # the last event id carries over, as lastEventId does


async def test_post_with_json_body(base: str, seen: Seen) -> None:
    """A POST with a JSON body, sent with Content-Length, streams its answer back."""
    body = json.dumps({"prompt": "streams of tokens"}).encode()
    async with connect_sse(
        base + "/chat",
        method="POST",
        headers=[("Content-Type", "application/json")],
        body=body,
    ) as response:
        words = [event.data async for event in response.events()]
    assert words == ["streams", "of", "tokens", "[DONE]"]
    (request,) = seen.requests
    assert request.method == "POST"
    assert request.headers.get("content-length") == str(len(body))


async def test_204_yields_no_events(base: str) -> None:
    """A 204 is a clean end: the block is entered and there is nothing to read."""
    async with connect_sse(base + "/stop") as response:
        assert response.status == 204
        assert [event async for event in response.events()] == []


@pytest.mark.parametrize("status", [404, 500, 401])
async def test_error_status_raises_with_the_body(base: str, status: int) -> None:
    """A status outside 2xx raises SSEResponseError with the status, headers and body."""
    url = f"{base}/missing-sometimes?status={status}"
    with pytest.raises(SSEResponseError) as caught:
        async with connect_sse(url):
            pytest.fail("the block must not be entered")
    assert caught.value.status == status
    assert caught.value.header("content-type") is not None
    assert b"not here" in caught.value.body
    assert isinstance(caught.value, SSEClientError)


async def test_unknown_route_is_404(base: str) -> None:
    """A route the server does not have is a 404 SSEResponseError."""
    with pytest.raises(SSEResponseError) as caught:
        async with connect_sse(base + "/nowhere"):
            pass
    assert caught.value.status == 404


async def test_wrong_content_type_raises(base: str) -> None:
    """A 200 that is text/html is not an event stream."""
    with pytest.raises(SSEResponseError) as caught:
        async with connect_sse(base + "/page"):
            pass
    assert caught.value.status == 200
    assert caught.value.header("content-type") == "text/html"
    assert caught.value.body == b"<!doctype html><p>not a stream</p>"


async def test_leaving_the_block_cancels_the_server_handler(base: str, seen: Seen) -> None:
    """Leaving the block closes the connection: the server cancels its handler at once."""
    async with connect_sse(base + "/forever") as response:
        async for event in response.events():
            if event.id == "3":
                break
    with trio.fail_after(5):
        await seen.handler_done.wait()
    assert seen.handler_cancelled


async def test_cancelling_the_reader_closes_the_connection(base: str, seen: Seen) -> None:
    """A cancel scope around the block cancels the upstream request too."""
    with trio.move_on_after(0.2):
        async with connect_sse(base + "/forever") as response:
            async for _ in response.events():
                pass
    with trio.fail_after(5):
        await seen.handler_done.wait()
    assert seen.handler_cancelled


async def test_event_over_the_limit_raises(base: str) -> None:
    """An event larger than max_event_bytes raises the typed error; smaller ones pass."""
    async with connect_sse(base + "/big?size=5000", max_event_bytes=4096) as response:
        iterator = response.events()
        assert (await iterator.__anext__()).data == "small"
        with pytest.raises(SSEEventTooLargeError) as caught:
            await iterator.__anext__()
    assert isinstance(caught.value, EventTooLargeError)
    assert caught.value.limit == 4096


async def test_https_with_a_test_ca(start_server) -> None:
    """https: the server certificate is verified against the given context."""
    trustme = require("trustme", "TLS test certificates")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    server = await start_server(client_app(Seen()), ssl_context=server_context)
    url = f"https://127.0.0.1:{server.port}/count?n=2"
    async with connect_sse(url, ssl_context=client_context) as response:
        ids = [event.id async for event in response.events()]
    assert ids == ["1", "2"]
    with pytest.raises(SSEConnectionError):  # the default context does not trust the test CA
        async with connect_sse(url):
            pass


async def test_connection_refused() -> None:
    """Nobody listening: SSEConnectionError."""
    with pytest.raises(SSEConnectionError):
        async with connect_sse(f"http://127.0.0.1:{free_port()}/"):
            pass


async def test_chunked_body_cut_short_is_a_connection_error(raw_server) -> None:
    """A chunked stream that stops mid-body is an error, not a clean end."""

    async def cut(stream: trio.SocketStream, head: bytes) -> None:
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
            b"d\r\ndata: first\n\n\r\n" + b"5\r\ndata:"
        )

    server = await raw_server(cut)
    async with connect_sse(server.url) as response:
        iterator = response.events()
        assert (await iterator.__anext__()).data == "first"
        with pytest.raises(SSEConnectionError):
            await iterator.__anext__()


async def test_close_delimited_body_and_bom(raw_server) -> None:
    """A body ended by closing (no length, no chunks) ends the stream cleanly; BOM dropped."""

    async def plain(stream: trio.SocketStream, head: bytes) -> None:
        await stream.send_all(
            response_head("Text/Event-Stream;charset=utf-8")
            + b"\xef\xbb\xbfdata: a\r\n\r\nid: 7\rdata: b\r\rdata: unfinished"
        )

    server = await raw_server(plain)
    async with connect_sse(server.url) as response:
        events = [event async for event in response.events()]
    assert [(e.data, e.id) for e in events] == [("a", ""), ("b", "7")]


async def test_gzip_the_client_did_not_ask_for_is_refused(raw_server) -> None:
    """A compressed body (never asked for) is refused rather than parsed as text."""

    async def gzipped(stream: trio.SocketStream, head: bytes) -> None:
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Content-Encoding: gzip\r\nConnection: close\r\n\r\n\x1f\x8b"
        )

    server = await raw_server(gzipped)
    with pytest.raises(SSEResponseError, match="gzip"):
        async with connect_sse(server.url):
            pass


async def test_only_http_urls() -> None:
    """Another scheme is a ValueError before any connection."""
    with pytest.raises(ValueError, match="http"):
        async with connect_sse("ftp://127.0.0.1/x"):
            pass


def test_event_is_importable_from_both_layers() -> None:
    """ServerSentEvent is the core's type, re-exported by the client."""
    from rawstream import core

    assert ServerSentEvent is core.ServerSentEvent


async def stalled_after(stream: trio.SocketStream, head: bytes, response: bytes) -> None:
    await stream.send_all(response)
    await trio.sleep_forever()


@pytest.mark.parametrize(
    "response",
    [
        # an error head, then a body that stalls after 5 bytes
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"err\r\n',
        # a 200 that is not an event stream, and never ends
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n",
    ],
)
async def test_a_refused_body_that_stalls_is_read_within_connect_timeout(
    raw_server, autojump_clock: trio.testing.MockClock, response: bytes
) -> None:
    """The error body kept in SSEResponseError is read under the same deadline as the head:
    a server that stalls it gives SSEConnectionError after connect_timeout, not a hang."""
    server = await raw_server(lambda stream, head: stalled_after(stream, head, response))
    start = trio.current_time()
    with trio.fail_after(600), pytest.raises(SSEConnectionError, match="within 5"):
        async with connect_sse(server.url, connect_timeout=5):
            pass
    assert trio.current_time() - start == pytest.approx(5)


async def test_a_complete_refused_body_is_kept_within_the_deadline(
    raw_server, autojump_clock: trio.testing.MockClock
) -> None:
    """A refusal whose body arrives in time still raises SSEResponseError with that body."""

    async def refuse(stream: trio.SocketStream, head: bytes) -> None:
        await stream.send_all(response_head("application/json", "429 Too Many Requests"))
        await trio.sleep(1)  # virtual time: the body comes 1 s into the 5 s deadline
        await stream.send_all(b'{"error": "slow down"}')

    server = await raw_server(refuse)
    start = trio.current_time()
    with pytest.raises(SSEResponseError) as caught:
        async with connect_sse(server.url, connect_timeout=5):
            pass
    assert (caught.value.status, caught.value.body) == (429, b'{"error": "slow down"}')
    assert trio.current_time() - start == pytest.approx(1)  # waited for the body, no longer


async def test_a_buffered_event_waits_for_a_checkpoint(raw_server) -> None:
    """SSEResponse.__anext__ is a checkpoint even when the event is already buffered: under
    a cancelled scope it raises Cancelled and the event stays for the next call."""

    async def three_at_once(stream: trio.SocketStream, head: bytes) -> None:
        await stream.send_all(response_head() + b"data: 1\n\ndata: 2\n\ndata: 3\n\n")
        await trio.sleep_forever()

    server = await raw_server(three_at_once)
    async with connect_sse(server.url) as response:
        events = response.events()
        assert (await events.__anext__()).data == "1"
        with trio.CancelScope() as scope:
            scope.cancel()
            await events.__anext__()
        assert scope.cancelled_caught
        assert [(await events.__anext__()).data for _ in range(2)] == ["2", "3"]


async def test_aclose_from_another_task_ends_the_iteration(base: str, seen: Seen) -> None:
    """response.aclose() while another task reads: the reader's iteration simply ends."""
    received: list[ServerSentEvent] = []
    enough = trio.Event()
    async with connect_sse(base + "/forever") as response, trio.open_nursery() as nursery:

        async def close_after_two() -> None:
            await enough.wait()
            await response.aclose()

        nursery.start_soon(close_after_two)
        with trio.fail_after(10):
            async for event in response.events():
                received.append(event)
                if len(received) == 2:
                    enough.set()
    assert [e.id for e in received[:2]] == ["1", "2"]
    with trio.fail_after(5):
        await seen.handler_done.wait()


# Ids the parser can hand over: anything without NUL, CR or LF.
event_ids = st.text(
    alphabet=st.characters(blacklist_characters="\x00\r\n", blacklist_categories=("Cs",)),
    max_size=12,
) | st.sampled_from([" 7", "7 ", "\t7\t", "a\x0bb", "\x0c", " ", "a  b", "é ", "\x7f"])


@settings(max_examples=60, deadline=None)
@given(last_event_id=event_ids)
async def test_any_last_event_id_can_be_sent_or_left_out(last_event_id: str) -> None:
    """Whatever the id, the request goes out: Last-Event-ID is the id without surrounding
    spaces and tabs, or, when h11 refuses even that, absent (never a ValueError)."""

    async def empty(stream: trio.SocketStream, head: bytes) -> None:
        await stream.send_all(response_head())

    async with trio.open_nursery() as nursery:  # per example: hypothesis runs each one alone
        server = await start_raw_server(nursery, empty)
        async with connect_sse(server.url + "/", last_event_id=last_event_id) as response:
            assert [event async for event in response.events()] == []
        nursery.cancel_scope.cancel()
    lines = [line for line in server.heads[0].split(b"\r\n") if line.startswith(b"last-event-id:")]
    trimmed = last_event_id.strip(" \t")
    if lines:
        assert lines == [b"last-event-id: " + trimmed.encode()]
    else:
        assert trimmed == "" or not _h11_accepts(trimmed.encode())


def _h11_accepts(value: bytes) -> bool:
    try:
        h11.Request(method="GET", target="/", headers=[(b"host", b"x"), (b"last-event-id", value)])
    except h11.LocalProtocolError:
        return False
    return True
