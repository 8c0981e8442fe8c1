"""examples/llm_relay.py does what its header says: relays tokens and cancels upstream."""

from __future__ import annotations

import importlib.util
import json
from functools import partial
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import trio
import trio.testing
from conftest import StartServer
from httpx_sse import aconnect_sse

from rawstream.llm.generator import MODEL_ID, answer
from rawstream.llm.protocol import Message

from .conftest import closed_port
from .fake_upstream import MODEL, Upstream

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "llm_relay.py"


def load_example(monkeypatch: pytest.MonkeyPatch, upstream: str) -> ModuleType:
    """A fresh copy of the example, reading ``UPSTREAM_URL=upstream`` as it is imported."""
    monkeypatch.setenv("UPSTREAM_URL", upstream)
    spec = importlib.util.spec_from_file_location("llm_relay_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def example_url(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch, upstream: str
) -> str:
    server = await start_server(load_example(monkeypatch, upstream).app)
    return f"http://127.0.0.1:{server.port}/v1/chat/completions"


async def test_the_example_relays_the_built_in_model(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch, base_url: str
) -> None:
    """The header's curl: the upstream's answer, chunk by chunk, ending with [DONE]."""
    url = await example_url(start_server, monkeypatch, base_url)
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
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch, base_url: str
) -> None:
    """An unknown model: the upstream's 404 and error body reach the client."""
    url = await example_url(start_server, monkeypatch, base_url)
    body = {"model": "nope", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    async with httpx.AsyncClient() as client:
        response = await client.post(url, json=body)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


async def test_the_example_cancels_the_upstream_when_the_client_leaves(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hang up after two chunks: the upstream's handler is cancelled."""
    upstream = Upstream(mode="hang")
    server = await start_server(upstream.app())
    url = await example_url(start_server, monkeypatch, f"http://127.0.0.1:{server.port}/v1")
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


async def test_an_unreachable_upstream_is_a_502(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing listens upstream: 502."""
    url = await example_url(start_server, monkeypatch, f"http://127.0.0.1:{closed_port()}/v1")
    async with httpx.AsyncClient() as client:
        response = await client.post(url, json={"model": "m", "messages": []})
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "server_error"


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"null", b"not json"])
async def test_a_body_that_is_not_a_json_object_is_a_400(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch, base_url: str, body: bytes
) -> None:
    """Malformed JSON, or JSON that is not an object: 400, not a server error."""
    url = await example_url(start_server, monkeypatch, base_url)
    async with httpx.AsyncClient() as client:
        response = await client.post(url, content=body)
    assert response.status_code == 400


async def test_an_upstream_that_never_answers_is_a_504(
    start_server: StartServer,
    monkeypatch: pytest.MonkeyPatch,
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A silent upstream (it accepts the connection, never answers): 504 after
    UPSTREAM_HEAD_TIMEOUT seconds (virtual time)."""

    async def silent(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    listeners = await nursery.start(partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
    monkeypatch.setenv("UPSTREAM_HEAD_TIMEOUT", "20")
    port = listeners[0].socket.getsockname()[1]
    url = await example_url(start_server, monkeypatch, f"http://127.0.0.1:{port}/v1")
    start = trio.current_time()
    async with httpx.AsyncClient(timeout=None) as client:
        response = await client.post(url, json={"model": "m", "messages": []})
    assert response.status_code == 504
    assert trio.current_time() - start == pytest.approx(20, abs=0.01)
