"""Relay chat completions to an upstream OpenAI-compatible server, token by token.

Theory of operation.  The relay always asks its upstream for a stream
(``POST {base}/chat/completions`` with ``stream: true``, through
:func:`rawstream.client.connect_sse`), whatever its own client asked for:

* the answer is a :class:`~rawstream.response.Response` whose body is an async generator;
  the server streams it with backpressure and, when the downstream client goes away, cancels
  it and closes it with ``aclose()``.  The generator is suspended inside
  ``async with connect_sse(...)``, so closing it leaves that block, which closes the upstream
  TCP connection: the upstream server sees its client go and stops generating.  No task,
  timer or flag is involved; the cancellation path is the generator's own cleanup.
* before answering, the handler advances that generator once, to the point where the upstream
  has sent a ``2xx`` ``text/event-stream`` head (:func:`_open_upstream` yields ``None`` there).
  Until then nothing is committed, so an upstream error (``SSEResponseError``: 4xx/5xx, or
  not an event stream) passes through with its own status and body, and an unreachable
  upstream gets a 502 with an OpenAI-style body.
* ``stream: true`` downstream: each upstream event is forwarded as it arrives.  Its ``data``
  is passed through unchanged, never parsed: fields the relay does not know (tool calls,
  logprobs, a vendor's extras) survive, and a token costs one SSE re-encoding, which keeps
  the framing valid whatever the data holds.  The stream ends after the upstream's
  ``[DONE]``; if the upstream fails mid-stream, a final ``{"error": ...}`` chunk says so (the
  ``openai`` client raises ``APIError`` on it) and no ``[DONE]`` follows.
* ``stream: false`` downstream: the chunks are folded into one ``chat.completion``
  (:class:`~rawstream.llm.aggregate.CompletionBuilder`; the relay asks for the usage chunk).
  It is still sent as a streamed body (one chunk at the end) so that a client that gives up,
  a timeout, say, cancels the upstream generation as well.  The price: a failure after the
  upstream's head can no longer change the status, so the response is cut short (the client
  sees an incomplete body) instead of getting a 502.

Credentials: ``api_key`` (the CLI reads ``$RAWSTREAM_UPSTREAM_API_KEY``) is sent upstream as
``Authorization: Bearer``.  The downstream client's own ``Authorization`` is never
forwarded: it was meant for this server, not for the upstream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import aclosing

import trio

from ..client import ServerSentEvent, SSEClientError, SSEResponseError, connect_sse
from ..client.http import MAX_ERROR_BODY_BYTES
from ..core.sse import Event
from ..request import HTTPError
from ..response import Response
from .aggregate import CompletionBuilder
from .builtin import sse_response
from .protocol import APIError, ChatRequest, dumps, sse_json

__all__ = ["Relay"]

_DONE_DATA = "[DONE]"
#: Upstream response headers passed through with an error answer.
_PASSED_HEADERS = ("content-type", "retry-after")


class Relay:
    """Chat completions answered by an upstream OpenAI-compatible server.

    Args:
        base_url: the upstream's API base, e.g. ``http://127.0.0.1:11434/v1``
            (``/chat/completions`` and ``/models`` are appended).
        api_key: sent upstream as ``Authorization: Bearer API_KEY``, if given.
        head_timeout: seconds the upstream gets to answer with a response head (connecting
            included); beyond it the client gets 504.  Once tokens flow there is no timeout:
            the downstream client decides how long it waits.
        max_event_bytes: the largest upstream event accepted (the client's bound).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        head_timeout: float = 60.0,
        max_event_bytes: int = 1 << 20,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"the upstream must be an http:// or https:// URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.head_timeout = head_timeout
        self.max_event_bytes = max_event_bytes
        self._headers = [("accept", "text/event-stream"), ("content-type", "application/json")]
        if api_key:
            self._headers.append(("authorization", f"Bearer {api_key}"))

    async def answer(self, chat: ChatRequest) -> Response:
        """Relay ``chat`` upstream and answer with its stream, or its aggregate.

        Raises:
            APIError: 502 (upstream unreachable or broken), 504 (no answer within
                ``head_timeout``).
        """
        body = dict(chat.body, stream=True)
        if not chat.stream:  # the aggregate's usage comes from the usage chunk
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        events = _open_upstream(
            self.base_url + "/chat/completions",
            headers=self._headers,
            body=dumps(body).encode(),
            connect_timeout=self.head_timeout,
            max_event_bytes=self.max_event_bytes,
        )
        try:
            await events.__anext__()  # returns once the upstream has answered 2xx
        except SSEResponseError as exc:
            return _pass_through(exc)
        except SSEClientError as exc:
            raise _upstream_failed(exc) from exc
        if chat.stream:
            return sse_response(_forward(events))
        return Response(_aggregate(events), content_type="application/json")

    async def get(self, path: str) -> Response:
        """``GET {base}{path}`` (``/models``), passed through: status, body, content type.

        Raises:
            APIError: 502 (upstream unreachable, its answer too large, or an event stream),
                504 (no answer within ``head_timeout``).
        """
        try:
            async with connect_sse(
                self.base_url + path, headers=self._headers, connect_timeout=self.head_timeout
            ):
                pass
        except SSEResponseError as exc:
            # To an SSE client, a JSON answer is "not an event stream": the error carries the
            # status and the start of the body, which is all of it unless it hit the bound.
            if len(exc.body) >= MAX_ERROR_BODY_BYTES:
                raise _upstream_failed(f"the upstream's answer to {path} is too large") from exc
            return _pass_through(exc)
        except SSEClientError as exc:
            raise _upstream_failed(exc) from exc
        raise _upstream_failed(f"the upstream answered {path} with an event stream")


async def _open_upstream(
    url: str,
    *,
    headers: list[tuple[str, str]],
    body: bytes,
    connect_timeout: float,
    max_event_bytes: int,
) -> AsyncGenerator[ServerSentEvent | None, None]:
    """Yield ``None`` once the upstream has answered 2xx with an event stream, then its events.

    Closing this generator (``aclose()``, or cancellation while it waits) leaves
    ``connect_sse``, which closes the upstream connection.
    """
    async with connect_sse(
        url,
        method="POST",
        headers=headers,
        body=body,
        connect_timeout=connect_timeout,
        max_event_bytes=max_event_bytes,
    ) as response:
        yield None
        async for event in response.events():
            yield event


async def _forward(
    events: AsyncGenerator[ServerSentEvent | None, None],
) -> AsyncGenerator[bytes, None]:
    """The downstream SSE body: every upstream event, re-encoded, up to ``[DONE]``."""
    async with aclosing(events):
        try:
            async for event in events:
                assert event is not None  # only the first item, consumed by Relay.answer
                kind = None if event.event == "message" else event.event
                yield Event(data=event.data, event=kind).encode()
                if event.data == _DONE_DATA:
                    return
        except SSEClientError as exc:
            yield sse_json(_upstream_failed(exc, "the upstream stream failed").body())


async def _aggregate(
    events: AsyncGenerator[ServerSentEvent | None, None],
) -> AsyncGenerator[bytes, None]:
    """The downstream JSON body: the upstream's chunks folded into one completion."""
    builder = CompletionBuilder()
    async with aclosing(events):
        try:
            async for event in events:
                assert event is not None
                if event.data == _DONE_DATA:
                    break
                builder.add(json.loads(event.data))
        except (SSEClientError, ValueError) as exc:
            # The 200 head is out: the one honest signal left is an incomplete body.
            raise HTTPError(502, f"the upstream stream failed: {exc}") from exc
    yield dumps(builder.result()).encode()


def _pass_through(exc: SSEResponseError) -> Response:
    """The upstream's answer as it came: status, body, content type (and Retry-After)."""
    headers = [(k, v) for k, v in exc.headers if k.lower() in _PASSED_HEADERS]
    return Response(exc.body, status=exc.status, headers=headers)


def _upstream_failed(
    cause: str | SSEClientError, doing: str = "cannot reach the upstream"
) -> APIError:
    """A 502 (a 504 if the upstream was too slow to answer) in the API's error format."""
    if isinstance(cause, str):
        return APIError(cause, status=502, type="server_error", code="upstream_error")
    timed_out = isinstance(cause.__cause__, trio.TooSlowError)
    return APIError(
        f"{doing}: {cause}",
        status=504 if timed_out else 502,
        type="server_error",
        code="upstream_timeout" if timed_out else "upstream_error",
    )
