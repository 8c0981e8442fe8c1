"""The built-in model through the official ``openai`` client, and the raw wire with httpx."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import trio
from conftest import StartServer, require
from httpx_sse import aconnect_sse

from rawstream import App
from rawstream.llm import add_chat_completions
from rawstream.llm.generator import MODEL_ID, answer, tokenize
from rawstream.llm.protocol import Message

from .conftest import stream_chunks

MESSAGES = [
    {"role": "system", "content": "You are a test."},
    {"role": "user", "content": "Stream me something"},
]
EXPECTED = answer([Message(m["role"], m["content"]) for m in MESSAGES])


async def test_streaming_chunks_add_up_to_the_answer(
    base_url: str, openai_client: Callable[[str], Any]
) -> None:
    """stream=True: role first, content deltas that concatenate to the answer, then stop."""
    client = openai_client(base_url)

    chunks = await stream_chunks(client, MESSAGES)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert {c.id for c in chunks} == {chunks[0].id}
    assert chunks[0].id.startswith("chatcmpl-")
    assert all(c.object == "chat.completion.chunk" and c.model == MODEL_ID for c in chunks)
    content = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert content == tokenize(EXPECTED)
    assert "".join(content) == EXPECTED
    assert EXPECTED.startswith("You said: “Stream me something”.")
    assert [c.choices[0].finish_reason for c in chunks] == [None] * (len(chunks) - 1) + ["stop"]
    assert all(c.usage is None for c in chunks)


async def test_non_streaming_answer(base_url: str, openai_client: Callable[[str], Any]) -> None:
    """stream=False: one chat.completion with the whole message and the usage."""
    client = openai_client(base_url)
    completion = await trio.to_thread.run_sync(
        lambda: client.chat.completions.create(model=MODEL_ID, messages=MESSAGES)
    )
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    choice = completion.choices[0]
    assert (choice.message.role, choice.message.content, choice.finish_reason) == (
        "assistant",
        EXPECTED,
        "stop",
    )
    assert completion.usage.prompt_tokens == 7  # "You are a test." + "Stream me something"
    assert completion.usage.completion_tokens == len(tokenize(EXPECTED))
    assert completion.usage.total_tokens == 7 + len(tokenize(EXPECTED))


async def test_include_usage_ends_with_a_usage_chunk(
    base_url: str, openai_client: Callable[[str], Any]
) -> None:
    """stream_options.include_usage: a last chunk with no choices and the token counts."""
    client = openai_client(base_url)

    def run() -> list[Any]:
        stream = client.chat.completions.create(
            model=MODEL_ID,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        return list(stream)

    chunks = await trio.to_thread.run_sync(run)
    last = chunks[-1]
    assert last.choices == []
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (
        7,
        len(tokenize(EXPECTED)),
    )
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("stream", [True, False])
async def test_max_tokens_cuts_with_finish_reason_length(
    base_url: str, openai_client: Callable[[str], Any], stream: bool
) -> None:
    """max_tokens=3: three tokens of the answer, finish_reason length."""
    client = openai_client(base_url)

    def run() -> tuple[str, str | None]:
        result = client.chat.completions.create(
            model=MODEL_ID, messages=MESSAGES, stream=stream, max_tokens=3
        )
        if not stream:
            return result.choices[0].message.content, result.choices[0].finish_reason
        chunks = list(result)
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        return text, chunks[-1].choices[0].finish_reason

    text, finish_reason = await trio.to_thread.run_sync(run)
    assert text == "".join(tokenize(EXPECTED)[:3])
    assert finish_reason == "length"


async def test_models_list_and_retrieve(base_url: str, openai_client: Callable[[str], Any]) -> None:
    """/v1/models lists the built-in model; /v1/models/{id} finds it, or 404s."""
    openai = require("openai", "the LLM tests use the official client")
    client = openai_client(base_url)
    models = await trio.to_thread.run_sync(lambda: [m.id for m in client.models.list()])
    assert models == [MODEL_ID]
    model = await trio.to_thread.run_sync(lambda: client.models.retrieve(MODEL_ID))
    assert model.owned_by == "rawstream"
    with pytest.raises(openai.NotFoundError):
        await trio.to_thread.run_sync(lambda: client.models.retrieve("gpt-nothing"))


@pytest.mark.parametrize(
    ("messages", "says"),
    [
        ([{"role": "wizard", "content": "hi"}], "messages[0].role"),
        ([], "non-empty"),
        ([{"role": "user"}], "messages[0].content"),
    ],
)
async def test_bad_requests_raise_bad_request_error(
    base_url: str, openai_client: Callable[[str], Any], messages: Any, says: str
) -> None:
    """Malformed messages: openai raises BadRequestError carrying our message."""
    openai = require("openai", "the LLM tests use the official client")
    client = openai_client(base_url)
    with pytest.raises(openai.BadRequestError) as caught:
        await trio.to_thread.run_sync(
            lambda: client.chat.completions.create(model=MODEL_ID, messages=messages)
        )
    assert caught.value.status_code == 400
    assert says in caught.value.message
    assert caught.value.body["type"] == "invalid_request_error"


async def test_an_unknown_model_is_not_found(
    base_url: str, openai_client: Callable[[str], Any]
) -> None:
    """Another model name: 404 model_not_found, as the API answers it."""
    openai = require("openai", "the LLM tests use the official client")
    client = openai_client(base_url)
    with pytest.raises(openai.NotFoundError) as caught:
        await trio.to_thread.run_sync(
            lambda: client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        )
    assert caught.value.code == "model_not_found"


# -- the raw wire ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "param"),
    [
        (b"{oops", None),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "model"),
        (b'{"model": "rawstream-echo"}', "messages"),
    ],
)
async def test_malformed_bodies_get_an_openai_style_400(
    base_url: str, content: bytes, param: str | None
) -> None:
    """Bad JSON or a missing field: 400, {"error": {message, type, param, code}}."""
    async with httpx.AsyncClient() as client:
        response = await client.post(base_url + "/chat/completions", content=content)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, None)
    assert error["message"]


async def test_a_body_over_the_limit_gets_413(start_server: StartServer) -> None:
    """A body over max_body_bytes: 413; a chunked one, found out by the handler, in the API
    format (a Content-Length over it is refused by the server before any handler runs)."""
    app = App()
    add_chat_completions(app, token_rate=0)
    server = await start_server(app, max_body_bytes=1000)
    url = f"http://127.0.0.1:{server.port}/v1/chat/completions"
    body = json.dumps({"model": MODEL_ID, "messages": [{"role": "user", "content": "x" * 2000}]})

    async def chunked() -> AsyncIterator[bytes]:
        yield body.encode()

    async with httpx.AsyncClient() as client:
        declared = await client.post(url, content=body)
        streamed = await client.post(url, content=chunked())
    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert streamed.json()["error"]["type"] == "invalid_request_error"


async def test_the_stream_on_the_wire(base_url: str) -> None:
    """The raw bytes: SSE headers, one data line per chunk, and the literal data: [DONE]."""
    body = {"model": MODEL_ID, "messages": MESSAGES, "stream": True, "max_tokens": 2}
    async with (
        httpx.AsyncClient() as client,
        client.stream("POST", base_url + "/chat/completions", json=body) as response,
    ):
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert response.headers["transfer-encoding"] == "chunked"
    events = raw.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    datas = [json.loads(e.removeprefix(b"data: ")) for e in events[:-2]]
    assert all(e.startswith(b"data: {") and b"\n" not in e for e in events[:-2])
    assert [d["choices"][0]["delta"] for d in datas] == [
        {"role": "assistant", "content": ""},
        {"content": tokenize(EXPECTED)[0]},
        {"content": tokenize(EXPECTED)[1]},
        {},
    ]


async def test_each_token_is_its_own_event(base_url: str) -> None:
    """Through an SSE parser (httpx-sse): chunk events, then [DONE], nothing after."""
    body = {"model": MODEL_ID, "messages": MESSAGES, "stream": True}
    async with (
        httpx.AsyncClient() as client,
        aconnect_sse(client, "POST", base_url + "/chat/completions", json=body) as source,
    ):
        datas = [event.data async for event in source.aiter_sse()]
    assert datas[-1] == "[DONE]"
    assert len(datas) == len(tokenize(EXPECTED)) + 3  # role, tokens, finish, [DONE]


def test_token_rate_must_not_be_negative() -> None:
    """A negative or NaN rate is refused when the routes are added."""
    for rate in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="token_rate"):
            add_chat_completions(App(), token_rate=rate)
