"""OpenAI-compatible chat completions: a built-in deterministic model, or a relay.

:func:`add_chat_completions` serves, on an :class:`~rawstream.App`:

* ``POST /v1/chat/completions``: ``stream: true`` answers with ``chat.completion.chunk``
  Server-Sent Events ending with ``data: [DONE]``, ``stream: false`` with one
  ``chat.completion``; a malformed request gets 400 with an OpenAI-style error body.
* ``GET /v1/models`` and ``GET /v1/models/{model}`` (``{owner}/{model}`` too): the model
  list, as ``client.models.list()`` reads it, and one model.

The answers come from the built-in model (:mod:`rawstream.llm.generator`: no network, no
weights, paced at ``token_rate`` tokens a second) or, with ``upstream``, from another
OpenAI-compatible server through :class:`rawstream.llm.relay.Relay`, which forwards tokens as
they arrive and cancels the upstream request when the client goes away.

Modules: :mod:`~rawstream.llm.protocol` (validation, errors, response objects),
:mod:`~rawstream.llm.generator` (the built-in model), :mod:`~rawstream.llm.builtin` (its
answers), :mod:`~rawstream.llm.relay` and :mod:`~rawstream.llm.aggregate` (the relay).
docs/LLM.md describes the wire format, the limits and how to try it.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from ..app import App
from ..request import HTTPError, Request
from ..response import Response
from .builtin import answer_builtin
from .generator import MODEL_ID
from .protocol import APIError, parse_chat_request
from .relay import Relay

__all__ = [
    "DEFAULT_TOKEN_RATE",
    "MODEL_ID",
    "UPSTREAM_API_KEY_ENV",
    "APIError",
    "Relay",
    "add_chat_completions",
]

#: Tokens per second of the built-in model.
DEFAULT_TOKEN_RATE = 30.0
#: The environment variable whose value, if set, the relay sends upstream as a bearer token.
UPSTREAM_API_KEY_ENV = "RAWSTREAM_UPSTREAM_API_KEY"
#: ``created`` of the built-in model in ``/v1/models`` (fixed: it is the same model forever).
_MODEL_CREATED = 1_700_000_000


def add_chat_completions(
    app: App,
    *,
    upstream: str | Relay | None = None,
    token_rate: float = DEFAULT_TOKEN_RATE,
    api_key: str | None = None,
    head_timeout: float = 60.0,
) -> None:
    """Serve ``POST /v1/chat/completions`` and ``GET /v1/models`` on ``app``.

    Args:
        app: the application to add the routes to.
        upstream: an OpenAI-compatible base URL (``http://HOST:PORT/v1``) to relay to, or a
            :class:`~rawstream.llm.relay.Relay` (to set its limits; ``api_key`` and
            ``head_timeout`` are then its own); None answers with the built-in model,
            ``rawstream-echo``.
        token_rate: tokens a second of the built-in model's streams (0 or ``math.inf``: as
            fast as the client reads).
        api_key: the relay's bearer token for the upstream; default
            ``$RAWSTREAM_UPSTREAM_API_KEY`` (the client's own ``Authorization`` is never
            forwarded).
        head_timeout: seconds the upstream gets to start answering (then 504).

    Raises:
        ValueError: ``token_rate`` is negative or NaN, ``upstream`` is not an http(s) URL
            with a host, or the API key cannot be sent as a header value.
    """
    if math.isnan(token_rate) or token_rate < 0:
        raise ValueError(f"token_rate must be 0 or more tokens a second, not {token_rate}")
    relay: Relay | None = upstream if isinstance(upstream, Relay) else None
    if isinstance(upstream, str):  # Relay() checks the URL and the key
        key = api_key if api_key is not None else os.environ.get(UPSTREAM_API_KEY_ENV)
        relay = Relay(upstream, api_key=key, head_timeout=head_timeout)

    @_api_errors
    async def chat_completions(request: Request) -> Response:
        """Answer a chat completion request (see the module doc)."""
        try:
            raw = await request.body()
        except HTTPError as exc:  # 413 too large, 408 too slow: in the API's own format
            raise APIError(exc.message, status=exc.status) from exc
        chat = parse_chat_request(raw)
        if relay is not None:
            return await relay.answer(chat)
        return answer_builtin(chat, token_rate)

    @_api_errors
    async def list_models(request: Request) -> Response:
        """The models this server answers with (the upstream's, when relaying)."""
        if relay is not None:
            return await relay.get("/models")
        return Response.json({"object": "list", "data": [_builtin_model()]})

    @_api_errors
    async def retrieve_model(request: Request) -> Response:
        """One model by name (``owner/name`` ids included: see the routes below)."""
        params = request.path_params
        name = f"{params['owner']}/{params['model']}" if "owner" in params else params["model"]
        if relay is not None:
            return await relay.get("/models/" + quote(name, safe=""))
        if name != MODEL_ID:
            raise APIError(
                f"The model `{name}` does not exist.",
                status=404,
                param="model",
                code="model_not_found",
            )
        return Response.json(_builtin_model())

    app.add_route("/v1/chat/completions", chat_completions, methods=["POST"])
    app.add_route("/v1/models", list_models)
    app.add_route("/v1/models/{model}", retrieve_model)
    # A path parameter is one segment, and the server decodes %2F before routing, so a
    # Hugging Face style id (meta-llama/Llama-3.1-8B) needs its own route.  Ids with two
    # slashes or more are not routed (404 from the router): docs/LLM.md.
    app.add_route("/v1/models/{owner}/{model}", retrieve_model)


def _api_errors(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Answer an :class:`APIError` raised by ``handler`` with its OpenAI-style body."""

    @functools.wraps(handler)
    async def answer(request: Request) -> Response:
        try:
            return await handler(request)
        except APIError as exc:
            return Response.json(exc.body(), status=exc.status)

    return answer


def _builtin_model() -> dict[str, Any]:
    return {"id": MODEL_ID, "object": "model", "created": _MODEL_CREATED, "owned_by": "rawstream"}
