"""The relay against upstreams that misbehave in exact bytes (a raw TCP server), and its
limits, timeouts and construction checks.  Timeouts run on the virtual clock."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from conftest import StartServer, require
from httpx_sse import aconnect_sse
from support.rawserver import RawHandler, RawServer, response_head
from support.rawserver import StartRawServer as StartRaw

from rawstream import App
from rawstream.client import connect_sse
from rawstream.llm import Relay, add_chat_completions
from rawstream.llm import relay as relay_module
from rawstream.llm.generator import MODEL_ID
from rawstream.llm.protocol import parse_chat_request

from .conftest import serve_chat, wait_for_eof
from .fake_upstream import chunk

MESSAGES = [{"role": "user", "content": "hi"}]


def request(stream: bool) -> dict[str, Any]:
    return {"model": "m", "messages": MESSAGES, "stream": stream}


async def relay_in_front_of(start_server: StartServer, upstream: RawServer, **options: Any) -> str:
    """A relay to ``upstream`` (``options`` go to Relay); its /v1 base URL."""
    return await serve_chat(start_server, upstream=Relay(upstream.base, **options))


def answering(*pieces: bytes) -> RawHandler:
    """An upstream that answers every request with these bytes, then closes."""

    async def handler(stream: trio.SocketStream, request: bytes) -> None:
        await stream.send_all(b"".join(pieces))

    return handler


def no_crash_logged(caplog: pytest.LogCaptureFixture) -> bool:
    return not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def sse_datas(base: str) -> list[str]:
    async with (
        httpx.AsyncClient(timeout=None) as client,
        aconnect_sse(client, "POST", base + "/chat/completions", json=request(True)) as source,
    ):
        return [event.data async for event in source.aiter_sse()]


# -- an upstream stream that does not end with [DONE] ----------------------------------------


async def test_a_stream_without_done_ends_with_an_error_chunk(
    start_server: StartServer, raw_upstream: StartRaw
) -> None:
    """The upstream's stream ends cleanly after one token, without [DONE]: the client gets
    the token, then an error chunk, and no [DONE] (it must not look complete)."""
    upstream = await raw_upstream(answering(response_head(), chunk({"content": "Hel"})))
    base = await relay_in_front_of(start_server, upstream)
    datas = await sse_datas(base)
    assert json.loads(datas[0])["choices"][0]["delta"] == {"content": "Hel"}
    assert "[DONE]" not in datas
    error = json.loads(datas[-1])["error"]
    assert "without [DONE]" in error["message"] and error["code"] == "upstream_error"


async def test_an_aggregate_without_done_is_cut_short(
    start_server: StartServer, raw_upstream: StartRaw, caplog: pytest.LogCaptureFixture
) -> None:
    """stream: false: no [DONE] means no complete answer: the body is cut short (the 200 is
    out), rather than a completion with finish_reason null."""
    upstream = await raw_upstream(answering(response_head(), chunk({"content": "Hel"})))
    base = await relay_in_front_of(start_server, upstream)
    async with httpx.AsyncClient(timeout=None) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(base + "/chat/completions", json=request(False))
    assert no_crash_logged(caplog)


@pytest.mark.parametrize("stream", [True, False])
async def test_an_upstream_204_is_a_502(
    start_server: StartServer, raw_upstream: StartRaw, stream: bool
) -> None:
    """204 No Content is no answer at all: 502 before anything is committed."""
    upstream = await raw_upstream(answering(b"HTTP/1.1 204 No Content\r\n\r\n"))
    base = await relay_in_front_of(start_server, upstream)
    async with httpx.AsyncClient(timeout=None) as client:
        response = await client.post(base + "/chat/completions", json=request(stream))
    assert response.status_code == 502
    assert "204" in response.json()["error"]["message"]


# -- stream: false, folding chunks -----------------------------------------------------------


def raw_chunk(value: Any) -> bytes:
    return b"data: " + json.dumps(value).encode() + b"\n\n"


@pytest.mark.parametrize(
    "bad",
    [
        {"choices": [{"index": [1], "delta": {"content": "x"}}]},
        {"choices": [{"index": 0, "delta": "x"}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": "f"}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": "f"}}]},
        {"choices": "x"},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": 3}]},
    ],
)
async def test_a_malformed_chunk_cuts_an_aggregate_short_without_a_crash(
    start_server: StartServer,
    raw_upstream: StartRaw,
    caplog: pytest.LogCaptureFixture,
    bad: dict[str, Any],
) -> None:
    """Chunks of the wrong shape are a broken upstream (cut short), not a server crash."""
    upstream = await raw_upstream(answering(response_head(), raw_chunk(bad), b"data: [DONE]\n\n"))
    base = await relay_in_front_of(start_server, upstream)
    async with httpx.AsyncClient(timeout=None) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(base + "/chat/completions", json=request(False))
    assert no_crash_logged(caplog)


async def test_an_aggregate_is_bounded(
    start_server: StartServer, raw_upstream: StartRaw, caplog: pytest.LogCaptureFixture
) -> None:
    """More chunk data than max_completion_bytes: cut short; below it, folded whole."""
    words = [chunk({"content": "x" * 100}) for _ in range(20)]  # 20 chunks, ~4 KiB of data
    upstream = await raw_upstream(answering(response_head(), *words, b"data: [DONE]\n\n"))
    small = await relay_in_front_of(start_server, upstream, max_completion_bytes=2000)
    large = await relay_in_front_of(start_server, upstream, max_completion_bytes=100_000)
    async with httpx.AsyncClient(timeout=None) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(small + "/chat/completions", json=request(False))
        whole = await client.post(large + "/chat/completions", json=request(False))
    assert whole.json()["choices"][0]["message"]["content"] == "x" * 2000
    assert no_crash_logged(caplog)


# -- re-encoding events ----------------------------------------------------------------------


async def test_an_event_type_with_nul_is_forwarded_as_a_message(
    start_server: StartServer, raw_upstream: StartRaw, caplog: pytest.LogCaptureFixture
) -> None:
    """`event: a<NUL>b` is legal SSE but cannot be encoded again: the event goes on without
    its type instead of breaking the stream."""
    typed = b"event: a\x00b\n" + chunk({"content": "Hel"})
    upstream = await raw_upstream(answering(response_head(), typed, b"data: [DONE]\n\n"))
    base = await relay_in_front_of(start_server, upstream)
    async with (
        httpx.AsyncClient(timeout=None) as client,
        aconnect_sse(client, "POST", base + "/chat/completions", json=request(True)) as source,
    ):
        events = [(event.event, event.data) async for event in source.aiter_sse()]
    assert [kind for kind, _ in events] == ["message", "message"]
    assert json.loads(events[0][1])["choices"][0]["delta"] == {"content": "Hel"}
    assert events[1][1] == "[DONE]"
    assert no_crash_logged(caplog)


# -- /v1/models ------------------------------------------------------------------------------


async def test_a_large_model_list_passes_through(
    start_server: StartServer, raw_upstream: StartRaw
) -> None:
    """A 200 KiB JSON list (over the client's 64 KiB error-body bound) arrives whole; the
    request asks for JSON and carries no Content-Type."""
    models = {
        "object": "list",
        "data": [
            {"id": f"model-{i:06d}", "object": "model", "owned_by": "x" * 50} for i in range(2500)
        ],
    }
    body = json.dumps(models).encode()
    assert len(body) > 200_000
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    upstream = await raw_upstream(answering(head % len(body), body))
    base = await relay_in_front_of(start_server, upstream)
    async with httpx.AsyncClient(timeout=None) as client:
        response = await client.get(base + "/models")
    assert response.status_code == 200
    assert response.content == body
    assert response.headers["content-type"] == "application/json"
    sent = upstream.heads[0].lower()
    assert sent.startswith(b"get /v1/models http/1.1")
    assert b"\r\naccept: application/json" in sent and b"content-type" not in sent


@pytest.mark.parametrize(
    "answer",
    [
        # Content-Length promises 1000 bytes, 10 arrive, then the connection closes
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n"
        b'{"object":',
        # larger than max_response_bytes (here 1000)
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n"
        + b" " * 5000,
    ],
    ids=["truncated", "too-large"],
)
async def test_a_truncated_or_oversized_model_list_is_a_502(
    start_server: StartServer, raw_upstream: StartRaw, answer: bytes
) -> None:
    """A model list cut short, or over max_response_bytes, is never passed on as a 200."""
    upstream = await raw_upstream(answering(answer))
    base = await relay_in_front_of(start_server, upstream, max_response_bytes=1000)
    async with httpx.AsyncClient(timeout=None) as client:
        response = await client.get(base + "/models")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_error"


async def test_a_model_id_with_a_slash(
    start_server: StartServer, raw_upstream: StartRaw, openai_client: Callable[[str], Any]
) -> None:
    """owner/name ids (Hugging Face style) are routed: the built-in model says 404
    model_not_found for the whole id, and the relay asks its upstream for it."""
    builtin = await serve_chat(start_server, token_rate=0)
    async with httpx.AsyncClient(timeout=None) as client:
        missing = await client.get(builtin + "/models/meta-llama%2FLlama-3")
        model = {"id": "meta-llama/Llama-3", "object": "model", "created": 1, "owned_by": "o"}
        body = json.dumps(model).encode()
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        upstream = await raw_upstream(answering(head % len(body), body))
        relay = await relay_in_front_of(start_server, upstream)
        found = await client.get(relay + "/models/meta-llama%2FLlama-3")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"
    assert "meta-llama/Llama-3" in missing.json()["error"]["message"]
    assert found.json() == model
    assert upstream.heads[0].startswith(b"GET /v1/models/meta-llama%2FLlama-3 HTTP/1.1")
    client = openai_client(builtin)
    openai = require("openai", "the official OpenAI client")
    with pytest.raises(openai.NotFoundError):
        await trio.to_thread.run_sync(lambda: client.models.retrieve("meta-llama/Llama-3"))


# -- timeouts (virtual clock) ----------------------------------------------------------------


async def silent(stream: trio.SocketStream, request: bytes) -> None:
    await trio.sleep_forever()


async def error_head_then_stall(stream: trio.SocketStream, request: bytes) -> None:
    await stream.send_all(
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        b'transfer-encoding: chunked\r\n\r\n5\r\n{"err\r\n'
    )
    await trio.sleep_forever()


@pytest.mark.parametrize("handler", [silent, error_head_then_stall])
@pytest.mark.parametrize(("method", "path"), [("POST", "/chat/completions"), ("GET", "/models")])
async def test_no_whole_answer_within_head_timeout_is_a_504(
    start_server: StartServer,
    raw_upstream: StartRaw,
    autojump_clock: trio.testing.MockClock,
    handler: RawHandler,
    method: str,
    path: str,
) -> None:
    """A silent upstream, or one that sends an error head and stalls its body, gets the
    client a 504 after exactly head_timeout (the error body's read is under it too)."""
    upstream = await raw_upstream(handler)
    base = await relay_in_front_of(start_server, upstream, head_timeout=7)
    start = trio.current_time()
    async with httpx.AsyncClient(timeout=None) as client:
        with trio.fail_after(600):
            kwargs: dict[str, Any] = {"json": request(True)} if method == "POST" else {}
            response = await client.request(method, base + path, **kwargs)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert trio.current_time() - start == pytest.approx(7, abs=0.01)


# -- closing the upstream --------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_closing_an_unstarted_body_closes_the_upstream(
    raw_upstream: StartRaw, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    """The server closes a body it never started when the client left before the head: the
    relay's body must then close the upstream connection itself, at once.  A live reference
    to the upstream generator is kept, so garbage collection (trio's finalizer, some time
    later) is not what closes it."""
    kept: list[Any] = []
    open_upstream = relay_module._open_upstream

    def keep(*args: Any, **kwargs: Any) -> Any:
        kept.append(open_upstream(*args, **kwargs))
        return kept[-1]

    monkeypatch.setattr(relay_module, "_open_upstream", keep)
    saw_eof = trio.Event()

    async def head_then_wait(stream_: trio.SocketStream, request: bytes) -> None:
        await stream_.send_all(response_head() + chunk({"content": "Hel"}))
        await wait_for_eof(stream_)
        saw_eof.set()

    upstream = await raw_upstream(head_then_wait)
    relay = Relay(upstream.base)
    chat = parse_chat_request(json.dumps(request(stream)).encode())
    response = await relay.answer(chat)
    body: Any = response.body
    await body.aclose()  # what the server does; the body was never iterated
    with trio.fail_after(5):
        await saw_eof.wait()
    assert len(kept) == 1


async def test_a_client_leaving_before_the_upstream_head_cancels_the_upstream(
    start_server: StartServer, raw_upstream: StartRaw
) -> None:
    """The client sends its request and hangs up while the relay waits for a slow upstream
    head: the upstream sees the relay's connection close before it answers."""
    request_seen = trio.Event()
    saw_eof = trio.Event()

    async def slow_head(stream: trio.SocketStream, request_bytes: bytes) -> None:
        request_seen.set()
        await wait_for_eof(stream)  # never answers: only the relay's leaving ends this
        saw_eof.set()

    upstream = await raw_upstream(slow_head)
    base = await relay_in_front_of(start_server, upstream)
    port = int(base.split(":")[2].split("/")[0])
    body = json.dumps(request(True)).encode()
    client = await trio.open_tcp_stream("127.0.0.1", port)
    await client.send_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n" % len(body) + body
    )
    with trio.fail_after(5):
        await request_seen.wait()
    await client.aclose()
    with trio.fail_after(5):
        await saw_eof.wait()


# -- the built-in model's pace, through the endpoint -----------------------------------------


async def test_the_token_rate_through_the_endpoint(
    start_server: StartServer, autojump_clock: trio.testing.MockClock
) -> None:
    """POST /v1/chat/completions at token_rate=4, read with the SSE client over a socket:
    content chunk i arrives i / 4 s after the first (virtual time)."""
    base = await serve_chat(start_server, token_rate=4)
    times: list[float] = []
    async with connect_sse(
        base + "/chat/completions",
        method="POST",
        headers={"content-type": "application/json"},
        body=json.dumps({**request(True), "model": MODEL_ID, "max_tokens": 6}).encode(),
    ) as response:
        async for event in response.events():
            if event.data == "[DONE]":
                break
            if event.json()["choices"][0]["delta"].get("content"):
                times.append(trio.current_time())
    assert [round(t - times[0], 6) for t in times] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]


# -- construction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://x/v1", "http:// or https://"),
        ("http:///v1", "http:// or https://"),
        ("127.0.0.1:8000/v1", "http:// or https://"),
        ("http://h:99999/v1", "not a valid URL"),
        ("http://h/v1?x=1", "query"),
    ],
)
def test_a_bad_upstream_url_is_refused_at_construction(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        Relay(url)
    with pytest.raises(ValueError, match=says):
        add_chat_completions(App(), upstream=url)


@pytest.mark.parametrize("key", ["sk-a\nb", "sk-a\rb", "sk-a\x00b", "sk-a\x0bb"])
def test_an_api_key_that_is_no_header_value_is_refused_at_construction(key: str) -> None:
    with pytest.raises(ValueError, match="API key"):
        Relay("http://127.0.0.1:1/v1", api_key=key)


async def test_the_api_key_is_stripped(start_server: StartServer, raw_upstream: StartRaw) -> None:
    """A key read from a file or an environment variable often ends with a newline."""
    upstream = await raw_upstream(answering(response_head(), b"data: [DONE]\n\n"))
    base = await relay_in_front_of(start_server, upstream, api_key="  sk-secret\n")
    await sse_datas(base)
    assert b"\r\nauthorization: Bearer sk-secret\r\n" in upstream.heads[0]
