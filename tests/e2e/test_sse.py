"""Server-Sent Events end to end, through httpx-sse."""

from __future__ import annotations

import httpx
import pytest
import trio
from httpx_sse import aconnect_sse
from support.testapp import Probes, build_app


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


async def test_head_on_sse_route(base: str) -> None:
    """HEAD on an SSE route gets the SSE head at once; the handler does not run."""
    from support.rawhttp import exchange

    port = int(base.rsplit(":", 1)[1])
    raw = await exchange(
        port, b"HEAD /sse/forever HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert b"content-type: text/event-stream; charset=utf-8" in raw
    assert raw.endswith(b"\r\n\r\n")


async def test_concurrent_first_sends_open_once(base: str) -> None:
    """Two tasks sending the first events at once: one response head, both events."""
    async with (
        httpx.AsyncClient() as client,
        aconnect_sse(client, "GET", base + "/sse/two-senders") as source,
    ):
        ids = sorted([e.id async for e in source.aiter_sse()])
    assert ids == ["a", "b"]
