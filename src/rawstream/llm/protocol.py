"""The OpenAI Chat Completions wire format: requests in, chunks and completions out.

Pure data, no I/O: :func:`parse_chat_request` turns a request body into a typed
:class:`ChatRequest` or raises :class:`APIError` (which knows its HTTP status and the
OpenAI-style body to answer with); the ``*_json`` builders produce the response objects.

The format, as the official clients read it
(https://platform.openai.com/docs/api-reference/chat):

* ``stream: false``: one ``chat.completion`` object with ``choices[].message`` and ``usage``.
* ``stream: true``: Server-Sent Events, each ``data:`` a ``chat.completion.chunk`` whose
  ``choices[].delta`` carries the role (first chunk), then content pieces; the last choice chunk
  has ``finish_reason`` (``"stop"`` or ``"length"``); with ``stream_options.include_usage`` a
  final chunk with empty ``choices`` and the ``usage``; then the literal ``data: [DONE]``.
* Errors: ``{"error": {"message", "type", "param", "code"}}`` with a 4xx/5xx status.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ..core.sse import SSE_HEADERS, Event
from ..response import Response

__all__ = [
    "DONE",
    "DONE_DATA",
    "MAX_MESSAGES",
    "ROLES",
    "APIError",
    "ChatRequest",
    "Message",
    "Usage",
    "chunk_json",
    "completion_json",
    "dumps",
    "new_completion_id",
    "parse_chat_request",
    "sse_json",
    "sse_response",
]

#: The roles a message may have (``developer`` is the newer name of ``system``).
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
#: Most messages one request may carry (the body itself is bounded by the server's
#: ``Config.max_body_bytes``).
MAX_MESSAGES = 1000


class APIError(Exception):
    """An error to answer with an OpenAI-style body.

    Args:
        message: what went wrong, for a human.
        status: the HTTP status (400 unless said otherwise).
        param: the request field at fault, if one is.
        code: a machine-readable code (``model_not_found``, ...), if any.
        type: the error type; ``invalid_request_error`` for the client's mistakes.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.type = type

    def body(self) -> dict[str, Any]:
        """The JSON body: ``{"error": {"message", "type", "param", "code"}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message: its role and its text (the text parts of its content, joined)."""

    role: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatRequest:
    """A validated ``POST /chat/completions`` request.

    Attributes:
        model: the model asked for.
        messages: the conversation.
        stream: answer with SSE chunks (True) or one JSON object.
        include_usage: ``stream_options.include_usage``: end the stream with a usage chunk.
        max_tokens: the most tokens to generate (``max_completion_tokens`` or the older
            ``max_tokens``), None for no limit.
        n: how many choices to generate.
        body: the request as it came (a relay forwards it).
    """

    model: str
    messages: tuple[Message, ...]
    stream: bool
    include_usage: bool
    max_tokens: int | None
    n: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one completion."""

    prompt_tokens: int
    completion_tokens: int

    def json(self) -> dict[str, int]:
        """As the ``usage`` object."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def parse_chat_request(raw: bytes) -> ChatRequest:
    """Validate a request body.

    Unknown fields are accepted and kept in :attr:`ChatRequest.body` (a relay forwards them;
    the built-in model ignores them).

    Raises:
        APIError: 400, naming the field at fault: the body is not a JSON object, ``model`` is
            not a non-empty string, ``messages`` is not a non-empty list (of at most
            :data:`MAX_MESSAGES`) of ``{"role", "content"}`` objects with a known role,
            or ``stream``, ``stream_options``, ``max_tokens`` or ``n`` has the wrong type.
    """
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise APIError(f"We could not parse the JSON body of your request: {exc}") from None
    if not isinstance(body, dict):
        raise APIError("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise APIError("you must provide a model parameter", param="model")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise APIError(
            f"Invalid type for 'stream': expected a boolean, got {stream!r}.", param="stream"
        )
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise APIError("'stream_options' must be an object.", param="stream_options")
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise APIError(
            "'stream_options.include_usage' must be a boolean.",
            param="stream_options.include_usage",
        )
    return ChatRequest(
        model=model,
        messages=_parse_messages(body.get("messages")),
        stream=stream,
        include_usage=include_usage,
        max_tokens=_max_tokens(body),
        n=_positive_int(body, "n", default=1) or 1,
        body=body,
    )


def _parse_messages(value: object) -> tuple[Message, ...]:
    if value is None:
        raise APIError("Missing required parameter: 'messages'.", param="messages")
    if not isinstance(value, list) or not value:
        raise APIError("'messages' must be a non-empty array.", param="messages")
    if len(value) > MAX_MESSAGES:
        raise APIError(
            f"'messages' has {len(value)} items; at most {MAX_MESSAGES} are allowed.",
            param="messages",
        )
    return tuple(_parse_message(item, f"messages[{i}]") for i, item in enumerate(value))


def _parse_message(item: object, where: str) -> Message:
    if not isinstance(item, dict):
        raise APIError(f"Invalid type for '{where}': expected an object.", param=where)
    role = item.get("role")
    if role not in ROLES:
        raise APIError(
            f"Invalid value for '{where}.role': {role!r}. Supported values are: "
            + ", ".join(f"'{r}'" for r in sorted(ROLES))
            + ".",
            param=f"{where}.role",
        )
    content = item.get("content")
    if content is None:
        # An assistant message that only calls tools has no content.
        if role == "assistant" and ("tool_calls" in item or "function_call" in item):
            return Message(role, "")
        raise APIError(f"Missing required parameter: '{where}.content'.", param=f"{where}.content")
    if isinstance(content, str):
        return Message(role, content)
    if isinstance(content, list):
        texts: list[str] = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise APIError(
                    f"Invalid content part '{where}.content[{j}]': expected an object with a type.",
                    param=f"{where}.content[{j}]",
                )
            if part["type"] == "text":
                text = part.get("text")
                if not isinstance(text, str):
                    raise APIError(
                        f"Missing text in '{where}.content[{j}]'.",
                        param=f"{where}.content[{j}].text",
                    )
                texts.append(text)
        return Message(role, "\n".join(texts))
    raise APIError(
        f"Invalid type for '{where}.content': expected a string or an array of content parts.",
        param=f"{where}.content",
    )


def _positive_int(body: dict[str, Any], name: str, *, default: int | None) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise APIError(
            f"Invalid value for '{name}': expected an integer of at least 1, got {value!r}.",
            param=name,
        )
    return value


def _max_tokens(body: dict[str, Any]) -> int | None:
    """``max_completion_tokens`` (current name) wins over ``max_tokens`` (deprecated)."""
    newer = _positive_int(body, "max_completion_tokens", default=None)
    older = _positive_int(body, "max_tokens", default=None)
    return newer if newer is not None else older


# -- responses -------------------------------------------------------------------------------


def new_completion_id() -> str:
    """A fresh ``chatcmpl-...`` id."""
    return "chatcmpl-" + secrets.token_hex(12)


def dumps(value: Any) -> str:
    """Compact JSON, as the API sends it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


#: The data of the event that ends a stream ...
DONE_DATA = "[DONE]"
#: ... and that event: ``data: [DONE]``.
DONE = Event(data=DONE_DATA).encode()


def sse_json(value: Any) -> bytes:
    """One SSE event whose data is ``value`` as JSON."""
    return Event(data=dumps(value)).encode()


def sse_response(body: AsyncIterator[bytes]) -> Response:
    """A streamed ``text/event-stream`` response (no caching, no proxy buffering)."""
    return Response(body, headers=[(k.decode(), v.decode()) for k, v in SSE_HEADERS])


def chunk_json(
    completion_id: str,
    created: int,
    model: str,
    *,
    delta: dict[str, str] | None = None,
    finish_reason: str | None = None,
    usage: Usage | None = None,
    include_usage: bool = False,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``.

    With ``delta`` (possibly empty) it carries choice 0; without it, it is the usage chunk
    (empty ``choices``).  Under ``include_usage`` every chunk has a ``usage`` key, null but
    on the last one, as the API sends them.
    """
    chunk: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    if include_usage or usage is not None:
        chunk["usage"] = usage.json() if usage is not None else None
    return chunk


def completion_json(
    completion_id: str,
    model: str,
    content: str,
    finish_reason: str,
    usage: Usage,
) -> dict[str, Any]:
    """One ``chat.completion`` (the ``stream: false`` answer), with a single choice."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage.json(),
    }
