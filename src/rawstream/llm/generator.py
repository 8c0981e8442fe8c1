"""The built-in model: a deterministic token generator (no network, no weights).

The answer quotes the last user message, then adds four sentences about what the reader is
watching, picked by a SHA-256 digest of the whole conversation: the same conversation always
gets the same answer (tests compare it exactly), another one gets another answer, and the
digest is stable across Python versions (``random``'s sampling is not promised to be).

Tokens are words with their leading whitespace (``"Hello world"`` is ``["Hello", " world"]``),
so joining them gives the answer back exactly; prompt tokens are counted the same way.

:func:`paced` releases tokens on a schedule, token ``i`` at ``start + i / rate``, rather than
sleeping ``1 / rate`` after each one: time spent between tokens (a slow client, a busy server)
does not add up into drift.  Tests run it on ``trio.testing.MockClock``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass

import trio

from .protocol import ChatRequest, Message, Usage

__all__ = ["MODEL_ID", "Completion", "answer", "complete", "paced", "tokenize"]

#: The name the built-in model answers to (``/v1/models`` lists it).
MODEL_ID = "rawstream-echo"

#: Words of the user's message quoted at the start of the answer.
_QUOTED_WORDS = 24
#: Sentences added after the quote.
_SENTENCES_PER_ANSWER = 4
_SENTENCES = (
    "Each of these words reached you as its own Server-Sent Event.",
    "A slow reader slows down its own producer and nobody else: that is backpressure.",
    "Close the tab and the server cancels this answer at once.",
    "No weights were loaded to write this; it comes from a deterministic token generator.",
    "The same question always gets the same answer, which keeps the tests honest.",
    "Trio runs every task in a nursery, so nothing outlives the request that started it.",
    "h11 parses the HTTP, and rawstream decides when the bytes may leave.",
    "Tokens leave on a schedule, so one busy moment does not slow down the whole answer.",
    "A relay passes an upstream model's tokens along exactly like these, as they arrive.",
    "Ask again in other words and the sentences change.",
    "The stream ends with a finish reason, then a line that says [DONE].",
    "Nothing here is buffered without a bound: every queue has a limit in bytes.",
)

_TOKEN = re.compile(r"\s*\S+")


def tokenize(text: str) -> list[str]:
    """Split ``text`` into word tokens, each with the whitespace before it."""
    return _TOKEN.findall(text)


def answer(messages: Iterable[Message]) -> str:
    """The built-in model's whole answer to a conversation (deterministic)."""
    messages = tuple(messages)
    user = [m for m in messages if m.role == "user" and m.text.strip()]
    said = (user or [m for m in messages if m.text.strip()] or [Message("user", "")])[-1].text
    words = said.split()
    if not words:
        opening = "You said nothing at all."
    else:
        quote = " ".join(words[:_QUOTED_WORDS]) + (" …" if len(words) > _QUOTED_WORDS else "")
        opening = f"You said: “{quote}”."
    conversation = json.dumps([[m.role, m.text] for m in messages], ensure_ascii=False)
    digest = hashlib.sha256(conversation.encode()).digest()
    remaining = list(_SENTENCES)
    picked = [remaining.pop(byte % len(remaining)) for byte in digest[:_SENTENCES_PER_ANSWER]]
    return " ".join([opening, *picked])


@dataclass(frozen=True, slots=True)
class Completion:
    """What the built-in model generates for one request."""

    tokens: tuple[str, ...]
    finish_reason: str  # "stop", or "length" when max_tokens cut the answer
    usage: Usage

    @property
    def text(self) -> str:
        """The generated text (the tokens joined)."""
        return "".join(self.tokens)


def complete(request: ChatRequest) -> Completion:
    """Generate the completion of ``request``, honouring ``max_tokens``."""
    tokens = tokenize(answer(request.messages))
    finish_reason = "stop"
    if request.max_tokens is not None and len(tokens) > request.max_tokens:
        tokens = tokens[: request.max_tokens]
        finish_reason = "length"
    prompt_tokens = sum(len(tokenize(m.text)) for m in request.messages)
    return Completion(tuple(tokens), finish_reason, Usage(prompt_tokens, len(tokens)))


async def paced(tokens: Iterable[str], rate: float) -> AsyncGenerator[str, None]:
    """Yield ``tokens``, token ``i`` no earlier than ``i / rate`` seconds after the first.

    ``rate`` 0 or infinity means as fast as the consumer takes them (still a checkpoint per
    token, so a long answer cannot starve other tasks).  Cancellation: the pending sleep
    raises ``Cancelled``; nothing needs cleaning up.
    """
    interval = 0.0 if rate == 0 or math.isinf(rate) else 1.0 / rate
    start = trio.current_time()
    for i, token in enumerate(tokens):
        if interval:
            await trio.sleep_until(start + i * interval)
        else:
            await trio.lowlevel.checkpoint()
        yield token
