"""Relay chat completions to an upstream OpenAI-compatible server, token by token.

Theory of operation.  The relay always asks its upstream for a stream
(``POST {base}/chat/completions`` with ``stream: true``, through
:func:`rawstream.client.connect_sse`), whatever its own client asked for:

* the answer is a :class:`~rawstream.response.Response` whose body is the upstream generator
  (:func:`_open_upstream`); the server streams it with backpressure and, when the
  downstream client goes away, cancels it and closes it with ``aclose()``.  The generator is
  suspended inside ``async with connect_sse(...)``, so closing it leaves that block, which
  closes the upstream TCP connection: the upstream server sees its client go and stops
  generating.  The generator has already started (see below), so ``aclose()`` does this even
  when the server never iterated the body (the client left before the head was sent).  No
  task, timer or flag is involved.
* before answering, the handler advances that generator once, to the point where the upstream
  has sent a ``2xx`` ``text/event-stream`` head (:func:`_open_upstream` yields ``b""`` there).
  Until then nothing is committed, so an upstream error (``SSEResponseError``: 4xx/5xx, or
  not an event stream) passes through with its own status and body, and an unreachable
  upstream gets a 502 with an OpenAI-style body.
* ``stream: true`` downstream: each upstream event is forwarded as it arrives.  Its ``data``
  is passed through unchanged, never parsed: fields the relay does not know (tool calls,
  logprobs, a vendor's extras) survive, and a token costs one SSE re-encoding, which keeps
  the framing valid whatever the data holds.  The stream ends after the upstream's
  ``[DONE]``; if the upstream fails mid-stream, or ends its stream without ``[DONE]`` (a
  model that stopped, cut short), a final ``{"error": ...}`` chunk says so (the ``openai``
  client raises ``APIError`` on it) and no ``[DONE]`` follows.  An event type that cannot be
  re-encoded (NUL in it, legal in SSE) is dropped: the event goes on as a plain message.
* ``stream: false`` downstream: the chunks are folded into one ``chat.completion``
  (:class:`~rawstream.llm.aggregate.CompletionBuilder`; the relay asks for the usage chunk).
  It is still sent as a streamed body (one chunk at the end) so that a client that gives up,
  a timeout, say, cancels the upstream generation as well.  The price: a failure after the
  upstream's head can no longer change the status, so the response is cut short (the client
  sees an incomplete body) instead of getting a 502; so it is when the chunks do not add up
  to a completion (no ``[DONE]``, a malformed chunk, more than ``max_completion_bytes``).
* ``GET /models`` is one small JSON document: :func:`rawstream.client.http.fetch` reads it
  whole (at most ``max_response_bytes``, refused if cut short) within ``head_timeout``.

Credentials: ``api_key`` (the CLI reads ``$RAWSTREAM_UPSTREAM_API_KEY``) is sent upstream as
``Authorization: Bearer``.  The downstream client's own ``Authorization`` is never
forwarded: it was meant for this server, not for the upstream.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from urllib.parse import urlsplit

import h11
import trio

from ..client import ServerSentEvent, SSEClientError, SSEResponseError, connect_sse
from ..client.http import FetchedResponse, fetch
from ..core.errors import InvalidEventError
from ..core.sse import Event
from ..request import HTTPError
from ..response import Response
from .aggregate import CompletionBuilder
from .protocol import DONE_DATA, APIError, ChatRequest, dumps, sse_json, sse_response

__all__ = ["Relay"]

log = logging.getLogger("rawstream.llm")

#: Upstream response headers passed through with an error answer.
_PASSED_HEADERS = ("content-type", "retry-after")

Events = AsyncIterator[ServerSentEvent]
Produce = Callable[[Events], AsyncGenerator[bytes, None]]


class Relay:
    """Chat completions answered by an upstream OpenAI-compatible server.

    Args:
        base_url: the upstream's API base, e.g. ``http://127.0.0.1:11434/v1``
            (``/chat/completions`` and ``/models`` are appended).
        api_key: sent upstream as ``Authorization: Bearer API_KEY``, if given (surrounding
            whitespace stripped).
        head_timeout: seconds the upstream gets to answer with a response head (connecting
            included, and the body of an error answer or of ``/models``); beyond it the client
            gets 504.  Once tokens flow there is no timeout: the downstream client decides
            how long it waits.
        max_event_bytes: the largest upstream event accepted (the client's bound).
        max_completion_bytes: the most upstream chunk data folded into one ``stream: false``
            answer; beyond it the answer is cut short.
        max_response_bytes: the largest ``/models`` answer passed through (beyond it: 502).

    Raises:
        ValueError: ``base_url`` is not an http(s) URL with a host, or ``api_key`` cannot be
            sent as a header value (CR, LF, NUL or another control character in it).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        head_timeout: float = 60.0,
        max_event_bytes: int = 1 << 20,
        max_completion_bytes: int = 4 << 20,
        max_response_bytes: int = 4 << 20,
    ) -> None:
        self.base_url = _check_base_url(base_url)
        self.head_timeout = head_timeout
        self.max_event_bytes = max_event_bytes
        self.max_completion_bytes = max_completion_bytes
        self.max_response_bytes = max_response_bytes
        self._auth: list[tuple[str, str]] = []
        if api_key and api_key.strip():
            value = _check_header("the upstream API key", f"Bearer {api_key.strip()}")
            self._auth.append(("authorization", value))
        self._headers = [  # (connect_sse adds accept: text/event-stream itself)
            ("content-type", "application/json"),
            *self._auth,
        ]

    async def answer(self, chat: ChatRequest) -> Response:
        """Relay ``chat`` upstream and answer with its stream, or its aggregate.

        Raises:
            APIError: 502 (upstream unreachable or broken), 504 (no answer within
                ``head_timeout``).
        """
        body = dict(chat.body, stream=True)
        if not chat.stream:  # the aggregate's usage comes from the usage chunk
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        limit = self.max_completion_bytes
        answer = _open_upstream(
            self.base_url + "/chat/completions",
            _forward if chat.stream else lambda events: _aggregate(events, limit),
            headers=self._headers,
            body=dumps(body).encode(),
            connect_timeout=self.head_timeout,
            max_event_bytes=self.max_event_bytes,
        )
        try:
            await answer.__anext__()  # returns once the upstream has answered 2xx
        except SSEResponseError as exc:
            return _pass_through(exc.status, exc.headers, exc.body)
        except SSEClientError as exc:
            raise _upstream_failed(exc) from exc
        # From here on the body owns `answer`: the server closes it however the answer ends.
        if chat.stream:
            return sse_response(answer)
        return Response(answer, content_type="application/json")

    async def get(self, path: str) -> Response:
        """``GET {base}{path}`` (``/models``), passed through: status, body, content type.

        The whole answer is read within ``head_timeout``; it must be complete and at most
        ``max_response_bytes``.

        Raises:
            APIError: 502 (upstream unreachable, its answer too large or cut short), 504 (no
                whole answer within ``head_timeout``).
        """
        headers = [("accept", "application/json"), *self._auth]
        try:
            with trio.fail_after(self.head_timeout):
                answer: FetchedResponse = await fetch(
                    self.base_url + path, headers=headers, max_body_bytes=self.max_response_bytes
                )
        except trio.TooSlowError as exc:
            raise _upstream_timeout(f"no answer to {path} within {self.head_timeout} s") from exc
        except SSEClientError as exc:
            raise _upstream_failed(exc) from exc
        return _pass_through(answer.status, answer.headers, answer.body)


def _check_base_url(base_url: str) -> str:
    """``base_url`` without its trailing slashes, if it is an http(s) URL with a host."""
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018 (a bad port raises ValueError)
    except ValueError as exc:
        raise ValueError(f"the upstream is not a valid URL: {base_url!r} ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the upstream must be an http:// or https:// URL: {base_url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"the upstream base URL must not have a query or fragment: {base_url!r}")
    return base_url.rstrip("/")


def _check_header(what: str, value: str) -> str:
    """``value`` if h11 can send it as a header value (no CR, LF, NUL, control characters)."""
    try:
        h11.Request(method="GET", target="/", headers=[(b"host", b"x"), (b"x", value.encode())])
    except h11.LocalProtocolError:
        raise ValueError(f"{what} cannot be sent in an HTTP header") from None
    return value


async def _open_upstream(
    url: str,
    produce: Produce,
    *,
    headers: list[tuple[str, str]],
    body: bytes,
    connect_timeout: float,
    max_event_bytes: int,
) -> AsyncGenerator[bytes, None]:
    """Yield ``b""`` once the upstream has answered 2xx with an event stream, then what
    ``produce`` makes of its events (the downstream body).

    Closing this generator (``aclose()``, or cancellation while it waits) closes
    ``produce``'s generator and leaves ``connect_sse``, which closes the upstream connection.

    Raises:
        SSEClientError: ... and a 204 (no stream at all) from the upstream.
    """
    async with connect_sse(
        url,
        method="POST",
        headers=headers,
        body=body,
        connect_timeout=connect_timeout,
        max_event_bytes=max_event_bytes,
    ) as response:
        if response.status == 204:
            raise SSEClientError("the upstream answered 204 No Content, not a stream")
        yield b""
        async with aclosing(produce(response.events())) as chunks:
            async for chunk in chunks:
                yield chunk


async def _forward(events: Events) -> AsyncGenerator[bytes, None]:
    """The downstream SSE body: every upstream event, re-encoded, up to ``[DONE]``."""
    try:
        async for event in events:
            yield _reencode(event)
            if event.data == DONE_DATA:
                return
    except SSEClientError as exc:
        yield sse_json(_upstream_failed(exc, "the upstream stream failed").body())
        return
    # The upstream's stream ended cleanly but without [DONE]: the answer may be cut short.
    failed = _upstream_failed("the upstream stream ended without [DONE]")
    yield sse_json(failed.body())


def _reencode(event: ServerSentEvent) -> bytes:
    """``event`` as one SSE event; a type that cannot be encoded (NUL in it) is dropped."""
    kind = None if event.event == "message" else event.event
    try:
        return Event(data=event.data, event=kind).encode()
    except InvalidEventError:
        log.debug("upstream event type %r cannot be re-encoded; sent as a message", kind)
        return Event(data=event.data).encode()


async def _aggregate(events: Events, limit: int) -> AsyncGenerator[bytes, None]:
    """The downstream JSON body: the upstream's chunks folded into one completion.

    Raises:
        HTTPError: 502 (the server cuts the body short: the 200 head is out) when the
            upstream fails, ends without ``[DONE]``, sends a chunk that is not one, or more
            than ``limit`` bytes of chunk data.
    """
    builder = CompletionBuilder()
    size = 0
    try:
        async for event in events:
            if event.data == DONE_DATA:
                break
            size += len(event.data.encode())  # (the bound is in bytes)
            if size > limit:
                raise ValueError(f"the answer is larger than {limit} bytes")
            builder.add(json.loads(event.data))
        else:
            raise ValueError("the stream ended without [DONE]")
    except (SSEClientError, ValueError) as exc:
        # The 200 head is out: the one honest signal left is an incomplete body.
        raise HTTPError(502, f"the upstream stream failed: {exc}") from exc
    yield dumps(builder.result()).encode()


def _pass_through(status: int, headers: list[tuple[str, str]], body: bytes) -> Response:
    """The upstream's answer as it came: status, body, content type (and Retry-After)."""
    passed = [(k, v) for k, v in headers if k.lower() in _PASSED_HEADERS]
    return Response(body, status=status, headers=passed)


def _upstream_timeout(message: str) -> APIError:
    return APIError(message, status=504, type="server_error", code="upstream_timeout")


def _upstream_failed(
    cause: str | SSEClientError, doing: str = "cannot reach the upstream"
) -> APIError:
    """A 502 (a 504 if the upstream was too slow to answer) in the API's error format."""
    if isinstance(cause, str):
        return APIError(cause, status=502, type="server_error", code="upstream_error")
    if isinstance(cause.__cause__, trio.TooSlowError):
        return _upstream_timeout(f"{doing}: {cause}")
    return APIError(f"{doing}: {cause}", status=502, type="server_error", code="upstream_error")
