"""LLM relay: stream an upstream model's tokens to your client as they arrive, and stop the
upstream request the moment your client goes away.

Try it, in three terminals:
    rawstream demo --port 9000 --log-level debug      # an upstream: the built-in model
    rawstream run examples/llm_relay.py --port 8000   # or: python examples/llm_relay.py
    curl -N http://127.0.0.1:8000/v1/chat/completions -H 'content-type: application/json' \\
      -d '{"model": "rawstream-echo", "stream": true,
           "messages": [{"role": "user", "content": "Hello!"}]}'
Press Ctrl-C in curl half way: the upstream logs ``stream ended: client_gone`` at once.
Another upstream: ``UPSTREAM_URL=https://api.openai.com/v1 UPSTREAM_API_KEY=sk-...``
(or a local Ollama at ``http://127.0.0.1:11434/v1``), with a model it knows.

How it works:
* ``relay()`` is an async generator suspended inside ``async with connect_sse(...)``.  When
  the client disconnects, rawstream cancels and closes the response body (``aclose()``);
  leaving the ``async with`` closes the upstream connection, and the upstream stops
  generating.  No task, timer or flag is needed.
* The handler runs the generator to its first ``yield`` before answering: by then the
  upstream has answered, so its errors (401, 404, 429...) pass through with their status,
  an unreachable upstream gets a 502, and one that sends no response head within
  ``UPSTREAM_HEAD_TIMEOUT`` seconds (default 60) a 504.  A started generator is what the
  response body is, so closing the body always runs its cleanup.
* Each upstream event's ``data`` is passed through unchanged (no JSON parsing), re-encoded as
  one SSE event, so the ``openai`` client reads the relay as it reads the upstream.

Left out (rawstream.llm.relay has them, behind ``rawstream demo --upstream URL``): request
validation beyond "a JSON object" (anything else gets a 400), ``stream: false`` (answered
there by folding the chunks into one completion), an error chunk when the upstream fails
mid-stream or ends without ``[DONE]``, ``/v1/models``.
"""

import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from functools import partial

import trio

from rawstream import App, Event, Request, Response, serve
from rawstream.client import SSEClientError, SSEResponseError, connect_sse

UPSTREAM_URL = os.environ.get("UPSTREAM_URL", "http://127.0.0.1:9000/v1").rstrip("/")
HEAD_TIMEOUT = float(os.environ.get("UPSTREAM_HEAD_TIMEOUT", "60"))  # seconds, then 504
HEADERS = {"content-type": "application/json"}
if os.environ.get("UPSTREAM_API_KEY"):  # the relay's own key; the client's is not forwarded
    HEADERS["authorization"] = "Bearer " + os.environ["UPSTREAM_API_KEY"]

app = App()


def error(message: str, status: int, kind: str = "server_error") -> Response:
    """An OpenAI-style error answer."""
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return Response.json(body, status=status)


@app.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    payload = await request.json()  # malformed JSON: 400
    if not isinstance(payload, dict):
        return error("the body must be a JSON object", 400, "invalid_request_error")
    body = {**payload, "stream": True}  # this example always streams
    tokens = relay(json.dumps(body).encode())
    try:
        await anext(tokens)  # returns when the upstream has answered 2xx with a stream
    except SSEResponseError as exc:  # the upstream refused: pass its answer through
        return Response(exc.body, status=exc.status, content_type=exc.header("content-type"))
    except SSEClientError as exc:  # unreachable, too slow, or broken before answering
        timed_out = isinstance(exc.__cause__, trio.TooSlowError)
        return error(str(exc), 504 if timed_out else 502)
    return Response(
        tokens,
        content_type="text/event-stream; charset=utf-8",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


async def relay(body: bytes) -> AsyncIterator[bytes]:
    """``b""`` once the upstream has answered, then each of its events as it arrives."""
    async with connect_sse(
        UPSTREAM_URL + "/chat/completions",
        method="POST",
        headers=HEADERS,
        body=body,
        connect_timeout=HEAD_TIMEOUT,  # to connect and get the head (no limit once it streams)
    ) as upstream:
        yield b""
        async for event in upstream.events():
            yield Event(event.data).encode()  # a chunk of JSON, or the final [DONE]


if __name__ == "__main__":  # python examples/llm_relay.py [PORT]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    trio.run(partial(serve, app, port=port, handle_signals=True))
