"""The relay: openai client -> rawstream relay -> upstream, and what crosses each hop.

Every server runs in-process on 127.0.0.1 (port 0); the ``openai`` client runs in a thread.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import trio
from conftest import StartServer, require
from httpx_sse import aconnect_sse
from support.rawhttp import free_port

from rawstream.llm.generator import MODEL_ID, answer, tokenize
from rawstream.llm.protocol import Message

from .conftest import serve_chat, stream_chunks
from .fake_upstream import MODEL, Upstream

MESSAGES = [{"role": "user", "content": "relay me"}]


async def relay_to(start_server: StartServer, upstream: Upstream, **options: Any) -> str:
    """A relay in front of ``upstream``; its ``/v1`` base URL."""
    server = await start_server(upstream.app())
    return await serve_chat(start_server, upstream=f"http://127.0.0.1:{server.port}/v1", **options)


# -- in front of the built-in model ----------------------------------------------------------


@pytest.fixture
async def relay_url(start_server: StartServer, base_url: str) -> str:
    """A relay whose upstream is a rawstream server running the built-in model."""
    return await serve_chat(start_server, upstream=base_url)


async def test_streaming_through_the_relay(
    relay_url: str, openai_client: Callable[[str], Any]
) -> None:
    """openai -> relay -> built-in model: the chunks arrive whole, in order, to the end."""
    client = openai_client(relay_url)

    chunks = await stream_chunks(client, MESSAGES)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == answer([Message("user", "relay me")])
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert {c.id for c in chunks} == {chunks[0].id}  # the upstream's id, passed through


async def test_non_streaming_through_the_relay(
    relay_url: str, openai_client: Callable[[str], Any]
) -> None:
    """stream=False downstream: the upstream's chunks folded into one completion with usage."""
    client = openai_client(relay_url)
    completion = await trio.to_thread.run_sync(
        lambda: client.chat.completions.create(model=MODEL_ID, messages=MESSAGES, max_tokens=4)
    )
    expected = tokenize(answer([Message("user", "relay me")]))
    assert completion.object == "chat.completion"
    assert completion.model == MODEL_ID
    assert completion.choices[0].message.content == "".join(expected[:4])
    assert completion.choices[0].finish_reason == "length"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (2, 4)


async def test_models_are_the_upstreams(
    relay_url: str, openai_client: Callable[[str], Any]
) -> None:
    """/v1/models on the relay answers with the upstream's list."""
    client = openai_client(relay_url)
    assert await trio.to_thread.run_sync(lambda: [m.id for m in client.models.list()]) == [MODEL_ID]


async def test_upstream_validation_errors_pass_through(
    relay_url: str, openai_client: Callable[[str], Any]
) -> None:
    """The upstream's 404 for an unknown model reaches the client as the upstream said it."""
    openai = require("openai", "the LLM tests use the official client")
    client = openai_client(relay_url)
    with pytest.raises(openai.NotFoundError) as caught:
        await trio.to_thread.run_sync(
            lambda: client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        )
    assert caught.value.code == "model_not_found"
    assert "gpt-4o" in caught.value.message


# -- in front of the fake upstream ------------------------------------------------------------


async def test_the_relay_forwards_data_unchanged(start_server: StartServer) -> None:
    """Each upstream event's data reaches the client byte for byte, then [DONE]."""
    upstream = Upstream()
    base = await relay_to(start_server, upstream)
    body = {"model": MODEL, "messages": MESSAGES, "stream": True}
    async with (
        httpx.AsyncClient() as client,
        aconnect_sse(client, "POST", base + "/chat/completions", json=body) as source,
    ):
        assert source.response.headers["content-type"] == "text/event-stream; charset=utf-8"
        datas = [event.data async for event in source.aiter_sse()]
    assert datas[-1] == "[DONE]"
    pieces = [json.loads(d) for d in datas[:-1]]
    assert [p["choices"][0]["delta"].get("content") for p in pieces] == [
        "",
        "Hello",
        " from",
        " upstream",
        None,
    ]
    assert all(p["system_fingerprint"] == "fp_fake" for p in pieces)  # unknown to the relay


async def test_the_request_goes_upstream_as_a_stream_without_the_clients_credentials(
    start_server: StartServer, openai_client: Callable[[str], Any]
) -> None:
    """The body is forwarded with stream: true (and usage for an aggregate); the relay's
    own key goes upstream, the client's Authorization does not."""
    upstream = Upstream()
    base = await relay_to(start_server, upstream, api_key="upstream-secret")
    client = openai_client(base)
    completion = await trio.to_thread.run_sync(
        lambda: client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0.5)
    )
    assert completion.choices[0].message.content == "Hello from upstream"
    assert completion.system_fingerprint == "fp_fake"
    assert completion.usage.total_tokens == 5
    [(headers, body)] = upstream.requests
    assert headers["authorization"] == "Bearer upstream-secret"  # not the client's "Bearer test"
    assert body == {
        "model": MODEL,
        "messages": MESSAGES,
        "temperature": 0.5,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_the_api_key_comes_from_the_environment(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$RAWSTREAM_UPSTREAM_API_KEY is the relay's bearer token; without it, none is sent."""
    plain, keyed = Upstream(), Upstream()
    plain_base = await relay_to(start_server, plain)
    monkeypatch.setenv("RAWSTREAM_UPSTREAM_API_KEY", "from-env")
    keyed_base = await relay_to(start_server, keyed)
    body = {"model": MODEL, "messages": MESSAGES}
    async with httpx.AsyncClient(headers={"authorization": "Bearer client"}) as client:
        for base in (plain_base, keyed_base):
            (await client.post(base + "/chat/completions", json=body)).raise_for_status()
    assert "authorization" not in plain.requests[0][0]
    assert keyed.requests[0][0]["authorization"] == "Bearer from-env"


async def test_upstream_errors_pass_through_with_status_and_body(
    start_server: StartServer, openai_client: Callable[[str], Any]
) -> None:
    """An upstream 429 reaches the client as a 429 with the upstream's body and Retry-After."""
    openai = require("openai", "the LLM tests use the official client")
    base = await relay_to(start_server, Upstream(mode="refuse"))
    async with httpx.AsyncClient() as client:
        response = await client.post(
            base + "/chat/completions", json={"model": MODEL, "messages": MESSAGES, "stream": True}
        )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["message"] == "slow down"
    client = openai_client(base)
    with pytest.raises(openai.RateLimitError, match="slow down"):
        await trio.to_thread.run_sync(
            lambda: client.chat.completions.create(model=MODEL, messages=MESSAGES)
        )


@pytest.mark.parametrize("stream", [True, False])
async def test_an_unreachable_upstream_is_a_502(
    start_server: StartServer, openai_client: Callable[[str], Any], stream: bool
) -> None:
    """Nothing listens upstream: 502 with an OpenAI-style error body."""
    openai = require("openai", "the LLM tests use the official client")
    base = await serve_chat(start_server, upstream=f"http://127.0.0.1:{free_port()}/v1")
    client = openai_client(base)
    with pytest.raises(openai.APIStatusError) as caught:
        await trio.to_thread.run_sync(
            lambda: client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=stream)
        )
    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "server_error"
    assert caught.value.code == "upstream_error"
    assert "cannot reach the upstream" in caught.value.message
    async with httpx.AsyncClient() as raw:
        models = await raw.get(base + "/models")
    assert models.status_code == 502


async def test_a_mid_stream_upstream_failure_ends_with_an_error_chunk(
    start_server: StartServer, openai_client: Callable[[str], Any]
) -> None:
    """The upstream breaks after some tokens: the client gets them, then an error (no [DONE])."""
    openai = require("openai", "the LLM tests use the official client")
    base = await relay_to(start_server, Upstream(mode="break"))
    client = openai_client(base)
    received: list[str] = []

    def run() -> None:
        stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        for piece in stream:
            received.append(piece.choices[0].delta.content or "")

    with pytest.raises(openai.APIError, match="the upstream stream failed"):
        await trio.to_thread.run_sync(run)
    assert "".join(received) == "Hello from upstream"


async def test_a_mid_stream_failure_cuts_an_aggregated_answer_short(
    start_server: StartServer,
) -> None:
    """stream=False: the head is out when the upstream breaks, so the body is left incomplete."""
    base = await relay_to(start_server, Upstream(mode="break"))
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(
                base + "/chat/completions", json={"model": MODEL, "messages": MESSAGES}
            )


# -- cancellation -----------------------------------------------------------------------------


async def test_client_disconnect_cancels_the_upstream_request(start_server: StartServer) -> None:
    """Read three chunks, hang up: the upstream's handler is cancelled before it finishes."""
    upstream = Upstream(mode="hang")
    base = await relay_to(start_server, upstream)
    body = {"model": MODEL, "messages": MESSAGES, "stream": True}
    async with (
        httpx.AsyncClient() as client,
        aconnect_sse(client, "POST", base + "/chat/completions", json=body) as source,
    ):
        events = source.aiter_sse()
        received = [(await events.__anext__()).data for _ in range(3)]
        assert not upstream.cancelled.is_set()  # the upstream is mid-answer, waiting
    # Leaving the blocks closed the downstream connection.
    with trio.fail_after(10):
        await upstream.cancelled.wait()
    assert json.loads(received[2])["choices"][0]["delta"] == {"content": " from"}
    assert (upstream.streams_started, upstream.finished) == (1, 0)


async def test_openai_stream_close_cancels_the_upstream_request(
    start_server: StartServer, openai_client: Callable[[str], Any]
) -> None:
    """The openai client's stream.close() after two chunks reaches the upstream."""
    upstream = Upstream(mode="hang")
    base = await relay_to(start_server, upstream)
    client = openai_client(base)

    def run() -> list[str]:
        stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        pieces = [next(stream).choices[0].delta.content for _ in range(2)]
        stream.close()
        return pieces

    assert await trio.to_thread.run_sync(run) == ["", "Hello"]
    with trio.fail_after(10):
        await upstream.cancelled.wait()
    assert upstream.finished == 0


async def test_a_non_streaming_client_that_leaves_cancels_the_upstream_too(
    start_server: StartServer,
) -> None:
    """stream=False: a client that gives up (a timeout) still cancels the upstream request."""
    upstream = Upstream(mode="hang")
    base = await relay_to(start_server, upstream)
    async with (
        httpx.AsyncClient() as client,
        client.stream(
            "POST", base + "/chat/completions", json={"model": MODEL, "messages": MESSAGES}
        ) as response,
    ):
        assert response.status_code == 200
        with trio.fail_after(10):
            await upstream.started.wait()
    with trio.fail_after(10):
        await upstream.cancelled.wait()
    assert upstream.finished == 0
