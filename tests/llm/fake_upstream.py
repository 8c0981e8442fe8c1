"""A fake OpenAI-compatible upstream for the relay tests: scripted, and watching its handler.

``Upstream`` records what the relay sent (headers, body) and how each streamed answer ended:
``started`` (an event) when a stream begins, ``finished`` (a count) when one ran to
``[DONE]``, ``cancelled`` (an event) when its generator was closed or cancelled before that,
which is what the relay's client disconnecting looks like from the upstream's side.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import trio

from rawstream import App, Event, HTTPError, Request, Response

MODEL = "fake-upstream"


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    value = {
        "id": "chatcmpl-upstream",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    return Event(json.dumps(value)).encode()


@dataclass
class Upstream:
    """What the fake upstream does (``mode``) and what it saw."""

    mode: str = "complete"  # complete | hang | break | refuse
    words: tuple[str, ...] = ("Hello", " from", " upstream")
    requests: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    streams_started: int = 0
    started: trio.Event = field(default_factory=trio.Event)
    finished: int = 0
    cancelled: trio.Event = field(default_factory=trio.Event)

    def app(self) -> App:
        app = App()

        @app.post("/v1/chat/completions")
        async def completions(request: Request) -> Response:
            body = await request.json()
            self.requests.append(({k: request.headers[k] for k in request.headers}, body))
            if self.mode == "refuse":
                error = {"error": {"message": "slow down", "type": "requests", "code": None}}
                return Response.json(error, status=429, headers=[("retry-after", "7")])
            return Response(
                self._stream(body),
                headers=[("cache-control", "no-cache")],
                content_type="text/event-stream",
            )

        @app.get("/v1/models")
        async def models(request: Request) -> Response:
            return Response.json({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

        return app

    async def _stream(self, body: dict[str, Any]) -> AsyncIterator[bytes]:
        self.streams_started += 1
        self.started.set()
        done = False
        try:
            yield chunk({"role": "assistant", "content": ""})
            for word in self.words:
                yield chunk({"content": word})
            if self.mode == "hang":  # a slow model: the next token never comes
                await trio.sleep_forever()
            if self.mode == "break":  # the upstream fails mid-answer: the connection is cut
                raise HTTPError(500, "the model crashed")
            yield chunk({}, "stop")
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
                yield Event(
                    json.dumps({"id": "chatcmpl-upstream", "choices": [], "usage": usage})
                ).encode()
            yield Event("[DONE]").encode()
            done = True
            self.finished += 1
        finally:
            if not done:
                self.cancelled.set()
