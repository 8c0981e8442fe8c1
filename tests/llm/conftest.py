"""Fixtures of the LLM tests: a server with the built-in model, and the ``openai`` client.

The ``openai`` client used here is the synchronous one: it runs in a worker thread
(``trio.to_thread.run_sync``) while the server runs in the test's Trio loop.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
import trio
from conftest import StartServer, require

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


def closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
