"""The built-in model: deterministic answers, word tokens, and pacing on a virtual clock."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncGenerator
from contextlib import aclosing

import pytest
import trio
import trio.testing

from rawstream.llm.builtin import answer_builtin
from rawstream.llm.generator import answer, complete, paced, tokenize
from rawstream.llm.protocol import ChatRequest, Message


def chat(*messages: Message, max_tokens: int | None = None) -> ChatRequest:
    return ChatRequest(
        model="rawstream-echo",
        messages=messages,
        stream=False,
        include_usage=False,
        max_tokens=max_tokens,
        n=1,
        body={},
    )


def test_answer_quotes_the_last_user_message() -> None:
    """The answer opens by quoting what the user said last."""
    text = answer(
        [Message("user", "first"), Message("assistant", "x"), Message("user", "Hi  there")]
    )
    assert text.startswith("You said: “Hi there”. ")


def test_answer_is_deterministic_and_depends_on_the_conversation() -> None:
    """Same conversation, same answer; another conversation, other sentences."""
    one = [Message("system", "be brief"), Message("user", "hello")]
    assert answer(one) == answer(list(one))
    others = {answer([Message("user", f"hello {i}")]).split("”. ", 1)[1] for i in range(8)}
    assert len(others) > 1


def test_long_messages_are_quoted_in_part() -> None:
    """Only the first 24 words are quoted, then an ellipsis."""
    words = [f"w{i}" for i in range(40)]
    text = answer([Message("user", " ".join(words))])
    assert text.startswith("You said: “" + " ".join(words[:24]) + " …”.")


def test_an_empty_conversation_still_gets_an_answer() -> None:
    """Whitespace-only content: the answer says nothing was said."""
    assert answer([Message("user", "   ")]).startswith("You said nothing at all. ")


@pytest.mark.parametrize("text", ["", "one", "  lead and trail ", "a\nb\tc  d", "“quoted” …"])
def test_tokens_join_back_to_the_text(text: str) -> None:
    """Tokens are words with their leading whitespace: joined, they give the text back."""
    assert "".join(tokenize(text)) == text.rstrip()


def test_complete_stops_at_max_tokens_with_length() -> None:
    """max_tokens cuts the answer and the finish reason says length; usage counts words."""
    full = complete(chat(Message("user", "tell me a story")))
    assert full.finish_reason == "stop"
    assert full.text == answer([Message("user", "tell me a story")])
    assert full.usage.prompt_tokens == 4
    cut = complete(chat(Message("user", "tell me a story"), max_tokens=5))
    assert cut.finish_reason == "length"
    assert cut.tokens == full.tokens[:5]
    assert cut.usage.completion_tokens == 5


def test_max_tokens_above_the_answer_length_changes_nothing() -> None:
    """A limit the answer does not reach: the whole answer, finish reason stop."""
    full = complete(chat(Message("user", "hi")))
    same = complete(chat(Message("user", "hi"), max_tokens=len(full.tokens)))
    assert (same.tokens, same.finish_reason) == (full.tokens, "stop")


async def test_tokens_are_paced_on_a_schedule(autojump_clock: trio.testing.MockClock) -> None:
    """At 4 tokens a second, token i leaves at i / 4 s after the first."""
    start = trio.current_time()
    times = []
    async with aclosing(paced(["a", "b", "c", "d", "e"], 4)) as tokens:
        async for _ in tokens:
            times.append(trio.current_time() - start)
    assert times == [0.0, 0.25, 0.5, 0.75, 1.0]


async def test_pacing_does_not_drift(autojump_clock: trio.testing.MockClock) -> None:
    """Time the consumer spends between tokens is absorbed by the schedule, not added to it."""
    start = trio.current_time()
    times = []
    async with aclosing(paced(list("abcdef"), 10)) as tokens:
        async for _ in tokens:
            times.append(round(trio.current_time() - start, 9))
            await trio.sleep(0.07)  # less than the 0.1 s slot
    assert times == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]


async def test_a_late_consumer_gets_overdue_tokens_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A consumer that fell behind the schedule is not made to wait again for what is due."""
    start = trio.current_time()
    times = []
    async with aclosing(paced(list("abcd"), 10)) as tokens:
        async for token in tokens:
            times.append(round(trio.current_time() - start, 9))
            if token == "a":
                await trio.sleep(0.25)  # b (0.1) and c (0.2) are overdue; d is due at 0.3
    assert times == [0.0, 0.25, 0.25, 0.3]


@pytest.mark.parametrize("rate", [0, math.inf])
async def test_rate_zero_or_infinite_means_unpaced(
    autojump_clock: trio.testing.MockClock, rate: float
) -> None:
    """Rate 0 or inf: every token at once (no virtual time passes)."""
    start = trio.current_time()
    async with aclosing(paced(list("abc"), rate)) as tokens:
        assert [t async for t in tokens] == ["a", "b", "c"]
    assert trio.current_time() == start


async def test_the_streamed_answer_is_paced_at_the_token_rate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The SSE body of a streamed answer at 5 tokens/s: content chunk i at i / 5 s."""
    request = dataclasses.replace(chat(Message("user", "pace me")), stream=True)
    body = answer_builtin(request, 5).body
    assert isinstance(body, AsyncGenerator)
    start = trio.current_time()
    times = []
    async with aclosing(body) as chunks:
        async for chunk in chunks:
            if b'"content":"' in chunk and b'"content":""' not in chunk:
                times.append(round(trio.current_time() - start, 9))
    assert times == [i / 5 for i in range(len(complete(request).tokens))]
