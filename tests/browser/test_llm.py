"""The LLM pane: fetch + ReadableStream renders tokens as they arrive; Stop aborts."""

from __future__ import annotations

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


#: Record every text the pane's last answer shows, as it changes (in ``window.answerTexts``):
#: a MutationObserver on the conversation, installed before the question is sent, sees the
#: answer paragraph added and every token appended to it.
RECORD_ANSWER_TEXTS = """() => {
  const log = document.getElementById("llm-log");
  window.answerTexts = [];
  new MutationObserver(() => {
    const answers = log.querySelectorAll(".assistant");
    if (answers.length) window.answerTexts.push(answers[answers.length - 1].textContent);
  }).observe(log, { childList: true, subtree: true, characterData: true });
}"""


def test_answer_streams_in_token_by_token(
    start_demo: Callable[..., DemoProcess], new_page: Callable[..., Any]
) -> None:
    """The answer appears in many steps, each extending the last, and ends as the whole
    answer the model gives to the same question; the pane then says done."""
    demo = start_demo("--token-rate", TOKEN_RATE)
    expected = full_answer(demo.url, PROMPT)
    page = new_page(demo.url)
    page.wait_for_function("() => document.getElementById('llm-models').options.length > 0")
    page.evaluate(RECORD_ANSWER_TEXTS)
    ask(page, PROMPT)
    page.wait_for_selector("#llm .badge[data-state='streaming']")
    assert page.is_enabled("#llm-stop") and page.is_disabled("#llm-send")

    page.wait_for_selector("#llm .badge:not([data-state='streaming'])", timeout=15_000)
    texts = page.evaluate("() => window.answerTexts")
    assert page.get_attribute("#llm .badge", "data-state") == "done"
    assert answer_text(page) == expected
    partial = sorted({s for s in texts if 0 < len(s) < len(expected)}, key=len)
    assert len(partial) >= 5, f"the answer did not arrive in steps: {partial}"
    assert all(expected.startswith(s) for s in partial)  # each a prefix: appended in order
    assert page.text_content("#llm-log .user") == PROMPT
    assert page.is_disabled("#llm-stop") and page.is_enabled("#llm-send")


#: A slower model for the Stop test: a wide margin between two tokens.
SLOW_TOKEN_RATE = "20"

#: Resolve after the page has rendered ``n`` more animation frames (its event loop has run
#: whatever was queued: a token read before the abort would have been appended by then).
FRAMES = """(n) => new Promise((resolve) => {
  const step = () => (--n <= 0 ? resolve() : requestAnimationFrame(step));
  requestAnimationFrame(step);
})"""


def test_stop_aborts_the_answer(
    start_demo: Callable[..., DemoProcess], new_page: Callable[..., Any]
) -> None:
    """Stop part way: the browser aborts the POST (the request fails with ERR_ABORTED: the
    connection is closed, so the server stops generating), the pane says stopped, and the
    text stays what had arrived, a prefix short of the answer."""
    demo = start_demo("--token-rate", SLOW_TOKEN_RATE)
    expected = full_answer(demo.url, PROMPT)
    page = new_page(demo.url)
    ask(page, PROMPT)
    page.wait_for_function(
        "() => (document.getElementById('llm-log').lastElementChild.textContent.length > 20)"
    )
    with page.expect_event("requestfailed") as failed:
        page.click("#llm-stop")
    assert failed.value.url.endswith("/v1/chat/completions")
    assert "ERR_ABORTED" in (failed.value.failure or "")
    page.wait_for_selector("#llm .badge[data-state='stopped']")
    stopped_at = answer_text(page)
    page.evaluate(FRAMES, 10)
    assert answer_text(page) == stopped_at
    assert 20 < len(stopped_at) < len(expected) and expected.startswith(stopped_at)
    assert page.is_enabled("#llm-send") and page.is_disabled("#llm-stop")
    assert page.eval_on_selector("#llm-log", "log => log.lastElementChild.className") == (
        "turn assistant stopped"
    )


def test_the_conversation_and_the_log_stay_bounded(
    start_demo: Callable[..., DemoProcess], new_page: Callable[..., Any]
) -> None:
    """21 turns: the request of the last one carries only the last 20 messages (the last
    answers and questions, older ones forgotten), and the log keeps the last 40 paragraphs
    (20 turns), not all 42."""
    demo = start_demo("--token-rate", "0")  # as fast as it goes
    page = new_page(demo.url)
    for turn in range(1, 22):
        if turn == 21:
            with page.expect_request("**/v1/chat/completions") as request:
                ask(page, f"question {turn}")
            sent = request.value.post_data_json["messages"]
        else:
            ask(page, f"question {turn}")
        page.wait_for_function(
            "n => document.querySelectorAll('#llm-log .assistant').length >= Math.min(n, 20)"
            " && document.querySelector('#llm .badge').dataset.state === 'done'",
            arg=turn,
        )
    assert len(sent) == 20
    questions = [m["content"] for m in sent if m["role"] == "user"]
    assert questions == [f"question {turn}" for turn in range(12, 22)]
    assert sent[0]["role"] == "assistant"  # question 11's answer; the question is gone
    log = page.eval_on_selector_all("#llm-log > *", "nodes => nodes.map(n => n.textContent)")
    assert len(log) == 40
    assert log[0] == "question 2" and log[-2] == "question 21"


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
