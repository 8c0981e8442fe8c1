"""examples/llm_relay.py does what its header says: relays tokens and cancels upstream."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import httpx
import pytest
import trio
import trio.testing
from conftest import LoadExample, StartServer
from httpx_sse import aconnect_sse
from support.rawhttp import free_port
from support.rawserver import StartRawServer

from rawstream.llm.generator import MODEL_ID, answer
from rawstream.llm.protocol import Message

from .fake_upstream import MODEL, Upstream

ExampleUrl = Callable[[str], Awaitable[str]]


@pytest.fixture
async def example_url(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch, load_example: LoadExample
) -> ExampleUrl:
    """``url = await example_url(upstream)``: a fresh copy of examples/llm_relay.py, reading
    ``UPSTREAM_URL=upstream`` as it is imported, served; its chat completions URL."""

    async def serve(upstream: str) -> str:
        monkeypatch.setenv("UPSTREAM_URL", upstream)
        server = await start_server(load_example("llm_relay").app)
        return f"http://127.0.0.1:{server.port}/v1/chat/completions"

    return serve


async def test_the_example_relays_the_built_in_model(
    example_url: ExampleUrl, base_url: str
) -> None:
    """The header's curl: the upstream's answer, chunk by chunk, ending with [DONE]."""
    url = await example_url(base_url)
    body = {"model": MODEL_ID, "stream": True, "messages": [{"role": "user", "content": "Hello!"}]}
    async with (
        httpx.AsyncClient() as client,
        aconnect_sse(client, "POST", url, json=body) as source,
    ):
        datas = [event.data async for event in source.aiter_sse()]
    assert datas[-1] == "[DONE]"
    text = "".join(json.loads(d)["choices"][0]["delta"].get("content", "") for d in datas[:-1])
    assert text == answer([Message("user", "Hello!")])


async def test_the_example_passes_upstream_errors_through(
    example_url: ExampleUrl, base_url: str
) -> None:
    """An unknown model: the upstream's 404 and error body reach the client."""
    url = await example_url(base_url)
    body = {"model": "nope", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    async with httpx.AsyncClient() as client:
        response = await client.post(url, json=body)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


async def test_the_example_cancels_the_upstream_when_the_client_leaves(
    start_server: StartServer, example_url: ExampleUrl
) -> None:
    """Hang up after two chunks: the upstream's handler is cancelled."""
    upstream = Upstream(mode="hang")
    server = await start_server(upstream.app())
    url = await example_url(f"http://127.0.0.1:{server.port}/v1")
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    async with (
        httpx.AsyncClient() as client,
        aconnect_sse(client, "POST", url, json=body) as source,
    ):
        events = source.aiter_sse()
        for _ in range(2):
            await events.__anext__()
    with trio.fail_after(10):
        await upstream.cancelled.wait()
    assert upstream.finished == 0


async def test_an_unreachable_upstream_is_a_502(example_url: ExampleUrl) -> None:
    """Nothing listens upstream: 502."""
    url = await example_url(f"http://127.0.0.1:{free_port()}/v1")
    async with httpx.AsyncClient() as client:
        response = await client.post(url, json={"model": "m", "messages": []})
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "server_error"


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"null", b"not json"])
async def test_a_body_that_is_not_a_json_object_is_a_400(
    example_url: ExampleUrl, base_url: str, body: bytes
) -> None:
    """Malformed JSON, or JSON that is not an object: 400, not a server error."""
    url = await example_url(base_url)
    async with httpx.AsyncClient() as client:
        response = await client.post(url, content=body)
    assert response.status_code == 400


async def test_an_upstream_that_never_answers_is_a_504(
    example_url: ExampleUrl,
    raw_upstream: StartRawServer,
    monkeypatch: pytest.MonkeyPatch,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A silent upstream (it accepts the connection, never answers): 504 after
    UPSTREAM_HEAD_TIMEOUT seconds (virtual time)."""

    async def silent(stream: trio.SocketStream, request: bytes) -> None:
        await trio.sleep_forever()

    upstream = await raw_upstream(silent)
    monkeypatch.setenv("UPSTREAM_HEAD_TIMEOUT", "20")
    url = await example_url(upstream.base)
    start = trio.current_time()
    async with httpx.AsyncClient(timeout=None) as client:
        response = await client.post(url, json={"model": "m", "messages": []})
    assert response.status_code == 504
    assert trio.current_time() - start == pytest.approx(20, abs=0.01)
