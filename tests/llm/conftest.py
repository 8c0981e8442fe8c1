"""Fixtures of the LLM tests: a server with the built-in model, and the ``openai`` client.

The ``openai`` client used here is the synchronous one: it runs in a worker thread
(``trio.to_thread.run_sync``) while the server runs in the test's Trio loop.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
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


RawHandler = Callable[[trio.SocketStream, bytes], Awaitable[None]]


@dataclass
class RawUpstream:
    """A TCP server standing in for an upstream that misbehaves in exact bytes: each
    connection's request head is recorded, then ``handler(stream, request_bytes_read)`` runs; the
    connection is closed when it returns."""

    port: int = 0
    heads: list[bytes] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@pytest.fixture
async def raw_upstream(nursery: trio.Nursery) -> Callable[[RawHandler], Awaitable[RawUpstream]]:
    """``upstream = await raw_upstream(handler)``."""

    async def start(handler: RawHandler) -> RawUpstream:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        upstream = RawUpstream(port=listeners[0].socket.getsockname()[1])

        async def serve_one(stream: trio.SocketStream) -> None:
            async with stream:
                data = b""
                while b"\r\n\r\n" not in data and (more := await stream.receive_some(65536)):
                    data += more
                head = data.partition(b"\r\n\r\n")[0]
                upstream.heads.append(head)
                await handler(stream, data)

        nursery.start_soon(trio.serve_listeners, serve_one, listeners)
        return upstream

    return start


async def wait_for_eof(stream: trio.SocketStream) -> None:
    """Read (and drop) what the peer sends until it closes the connection."""
    while await stream.receive_some(65536):
        pass


def sse_head(status: str = "200 OK", content_type: str = "text/event-stream") -> bytes:
    """A response head for a close-delimited body."""
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\nconnection: close\r\n\r\n".encode()
    )
