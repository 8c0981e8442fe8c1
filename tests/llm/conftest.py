"""Fixtures of the LLM tests: a server with the built-in model, a raw upstream, and the
``openai`` client.

The ``openai`` client used here is the synchronous one: it runs in a worker thread
(``trio.to_thread.run_sync``) while the server runs in the test's Trio loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import pytest
import trio
from conftest import StartServer, require
from support.rawserver import StartRawServer, start_raw_server

from rawstream import App
from rawstream.llm import add_chat_completions


async def serve_chat(start_server: StartServer, **options: Any) -> str:
    """Start an app with ``add_chat_completions(**options)``; return its ``/v1`` base URL."""
    app = App()
    add_chat_completions(app, **options)
    server = await start_server(app)
    return f"http://127.0.0.1:{server.port}/v1"


@pytest.fixture
async def base_url(start_server: StartServer) -> str:
    """The built-in model, unpaced (``token_rate=0``)."""
    return await serve_chat(start_server, token_rate=0)


@pytest.fixture
def openai_client() -> Callable[[str], Any]:
    """``openai_client(base_url)``: an ``openai.OpenAI`` without retries."""
    openai = require("openai", "the LLM tests use the official client")

    def make(base: str) -> Any:
        return openai.OpenAI(base_url=base, api_key="test", max_retries=0, timeout=30)

    return make


async def stream_chunks(client: Any, messages: list[dict[str, Any]], **options: Any) -> list[Any]:
    """Every chunk of ``client.chat.completions.create(stream=True, ...)``, read in a thread
    (the synchronous ``openai`` client blocks; the server runs in this Trio loop)."""
    from rawstream.llm.generator import MODEL_ID

    def run() -> list[Any]:
        with client.chat.completions.create(
            model=MODEL_ID, messages=messages, stream=True, **options
        ) as stream:
            return list(stream)

    chunks: list[Any] = await trio.to_thread.run_sync(run)
    return chunks


@pytest.fixture
async def raw_upstream(nursery: trio.Nursery) -> AsyncIterator[StartRawServer]:
    """``upstream = await raw_upstream(handler)``: a raw TCP server standing in for an
    upstream that misbehaves in exact bytes (see support.rawserver); ``upstream.base`` is its
    ``/v1`` URL."""
    yield partial(start_raw_server, nursery)


async def wait_for_eof(stream: trio.SocketStream) -> None:
    """Read (and drop) what the peer sends until it closes the connection."""
    while await stream.receive_some(65536):
        pass
