"""The LLM pane: fetch + ReadableStream renders tokens as they arrive; Stop aborts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from .conftest import DemoProcess

#: Tokens a second of the demo's built-in model in these tests: an answer of about 80 tokens
#: takes one to two seconds, long enough to watch it grow (and to stop it part way).
TOKEN_RATE = "50"
MODEL = "rawstream-echo"
PROMPT = "How does a browser read a stream of tokens?"


def full_answer(base: str, prompt: str) -> str:
    """The whole answer to ``prompt``, asked without streaming (the model is deterministic)."""
    response = httpx.post(
        base + "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": prompt}]},
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["choices"][0]["message"]["content"])


def answer_text(page: Any) -> str:
    """The text of the last answer in the pane."""
    return str(page.eval_on_selector("#llm-log", "log => log.lastElementChild.textContent"))


def ask(page: Any, prompt: str) -> None:
    page.fill("#llm-prompt", prompt)
    page.click("#llm-send")


def sample_answer(page: Any, until: Callable[[], bool], timeout: float = 15.0) -> list[str]:
    """The answer's text, sampled every 20 ms until ``until()`` (bounded by ``timeout``)."""
    samples = []
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "the answer did not finish in time"
        samples.append(answer_text(page))
        time.sleep(0.02)
    return samples


def test_answer_streams_in_token_by_token(
    start_demo: Callable[..., DemoProcess], new_page: Callable[..., Any]
) -> None:
    """The answer appears in many steps, each extending the last, and ends as the whole
    answer the model gives to the same question; the pane then says done."""
    demo = start_demo("--token-rate", TOKEN_RATE)
    expected = full_answer(demo.url, PROMPT)
    page = new_page(demo.url)
    page.wait_for_function("() => document.getElementById('llm-models').options.length > 0")
    ask(page, PROMPT)
    page.wait_for_selector("#llm .badge[data-state='streaming']")
    assert page.is_enabled("#llm-stop") and page.is_disabled("#llm-send")

    samples = sample_answer(
        page, lambda: page.get_attribute("#llm .badge", "data-state") != "streaming"
    )
    assert page.get_attribute("#llm .badge", "data-state") == "done"
    assert answer_text(page) == expected
    partial = sorted({s for s in samples if 0 < len(s) < len(expected)}, key=len)
    assert len(partial) >= 5, f"the answer did not arrive in steps: {partial}"
    assert all(expected.startswith(s) for s in partial)  # each a prefix: appended in order
    assert page.text_content("#llm-log .user") == PROMPT
    assert page.is_disabled("#llm-stop") and page.is_enabled("#llm-send")


def test_stop_aborts_the_answer(
    start_demo: Callable[..., DemoProcess], new_page: Callable[..., Any]
) -> None:
    """Stop part way: the pane says stopped, the text stops growing, short of the answer."""
    demo = start_demo("--token-rate", TOKEN_RATE)
    expected = full_answer(demo.url, PROMPT)
    page = new_page(demo.url)
    ask(page, PROMPT)
    page.wait_for_function(
        "() => (document.getElementById('llm-log').lastElementChild.textContent.length > 20)"
    )
    page.click("#llm-stop")
    page.wait_for_selector("#llm .badge[data-state='stopped']")
    stopped_at = answer_text(page)
    time.sleep(0.5)  # at 50 tokens a second, ~25 more tokens had it not stopped
    assert answer_text(page) == stopped_at
    assert 20 < len(stopped_at) < len(expected) and expected.startswith(stopped_at)
    assert page.is_enabled("#llm-send") and page.is_disabled("#llm-stop")


def test_an_unknown_model_shows_the_servers_error(
    start_demo: Callable[..., DemoProcess], new_page: Callable[..., Any]
) -> None:
    """A model the server does not have: the pane shows the API's error message, as text."""
    demo = start_demo()
    page = new_page(demo.url)
    page.wait_for_function("() => document.getElementById('llm-models').options.length > 0")
    page.fill("#llm-model", "no-such-<model>")
    ask(page, "hello")
    page.wait_for_selector("#llm .badge[data-state='error']")
    error = page.text_content("#llm-log .error")
    assert "no-such-<model>" in error and "does not exist" in error
