"""Answer chat completions with the built-in model (:mod:`rawstream.llm.generator`).

``stream: true`` answers with an async generator of SSE bytes, which the server streams
chunked with backpressure (it asks for the next token only when the client has room for it)
and closes with ``aclose()`` when the client goes away, which cancels the pacing sleep: an
abandoned answer stops costing anything at once.  ``stream: false`` answers at once: the
whole text is ready, and there is nothing to watch arrive.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import aclosing

from ..response import Response
from .generator import MODEL_ID, Completion, complete, paced
from .protocol import (
    DONE,
    APIError,
    ChatRequest,
    Usage,
    chunk_json,
    completion_json,
    new_completion_id,
    sse_json,
    sse_response,
)

__all__ = ["answer_builtin"]


def answer_builtin(chat: ChatRequest, token_rate: float) -> Response:
    """The built-in model's answer to ``chat``.

    Raises:
        APIError: 404 for another model than :data:`~rawstream.llm.generator.MODEL_ID`;
            400 for ``n`` other than 1.
    """
    if chat.model != MODEL_ID:
        raise APIError(
            f"The model `{chat.model}` does not exist; this server has `{MODEL_ID}`.",
            status=404,
            param="model",
            code="model_not_found",
        )
    if chat.n != 1:
        raise APIError(f"The built-in model generates one choice, not n={chat.n}.", param="n")
    completion = complete(chat)
    if chat.stream:
        return sse_response(_stream(chat, completion, token_rate))
    return Response.json(
        completion_json(
            new_completion_id(),
            chat.model,
            completion.text,
            completion.finish_reason,
            completion.usage,
        )
    )


async def _stream(
    chat: ChatRequest, completion: Completion, rate: float
) -> AsyncGenerator[bytes, None]:
    """The chunks: the role, one per token, the finish reason, the usage if asked, [DONE]."""
    completion_id, created = new_completion_id(), int(time.time())

    def chunk(
        delta: dict[str, str] | None = None,
        finish_reason: str | None = None,
        usage: Usage | None = None,
    ) -> bytes:
        value = chunk_json(
            completion_id,
            created,
            chat.model,
            delta=delta,
            finish_reason=finish_reason,
            usage=usage,
            include_usage=chat.include_usage,
        )
        return sse_json(value)

    yield chunk(delta={"role": "assistant", "content": ""})
    async with aclosing(paced(completion.tokens, rate)) as tokens:
        async for token in tokens:
            yield chunk(delta={"content": token})
    yield chunk(delta={}, finish_reason=completion.finish_reason)
    if chat.include_usage:
        yield chunk(usage=completion.usage)
    yield DONE
