"""The long-task pane: POST /tasks, then a progress bar driven by the task's SSE events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from support.redis import RedisServer

from .conftest import DemoProcess


def test_long_task_runs_to_100_percent(
    start_demo: Callable[..., DemoProcess], new_page: Callable[..., Any]
) -> None:
    """Start a 12-step task: the bar moves through intermediate values and ends full, with
    "100 %" and the done state."""
    demo = start_demo()
    page = new_page(demo.url)
    page.fill("#task-steps", "12")
    page.fill("#task-interval", "150")
    page.click("#task-start")

    # Part way: the bar has moved but is not full (steps arrive one by one, not at the end).
    page.wait_for_function(
        "() => { const v = document.getElementById('task-progress').value;"
        " return v > 0 && v < 12; }"
    )
    assert page.is_disabled("#task-start")  # one task at a time

    page.wait_for_selector("#task .badge[data-state='done']")
    assert page.eval_on_selector("#task-progress", "bar => [bar.value, bar.max]") == [12, 12]
    assert page.text_content("#task-percent") == "100 %"
    assert page.text_content("#task-detail") == "12 of 12 steps"
    assert page.is_enabled("#task-start")


def test_task_start_refused_shows_why(
    start_demo: Callable[..., DemoProcess], new_page: Callable[..., Any]
) -> None:
    """A refused start (steps out of bounds, past the form's own check) says why, as text."""
    demo = start_demo()
    page = new_page(demo.url)
    # Remove the input's max so the browser lets the value through to the server.
    page.eval_on_selector("#task-steps", "input => input.removeAttribute('max')")
    page.fill("#task-steps", "100000")
    page.click("#task-start")
    page.wait_for_selector("#task .badge[data-state='error']")
    assert "steps must be between 1 and 1000" in page.text_content("#task-detail")
    assert page.is_enabled("#task-start")


def start_long_task(page: Any, steps: int, interval_ms: int) -> None:
    """Start a task and wait until its bar has moved (the job runs, the stream is live)."""
    page.fill("#task-steps", str(steps))
    page.fill("#task-interval", str(interval_ms))
    page.click("#task-start")
    page.wait_for_selector("#task .badge[data-state='running']")
    page.wait_for_function("() => document.getElementById('task-progress').value > 0")


def assert_ended(page: Any, badge: str, why: str) -> None:
    """The pane is in its error state with ``badge``, says ``why``, and Start works again."""
    page.wait_for_selector(f"#task .badge[data-state='error']:text-is('{badge}')", timeout=30_000)
    detail = page.text_content("#task-detail")
    assert why in detail, detail  # the reason, not the stale "k of N steps"
    assert page.is_enabled("#task-start")


def test_a_restart_ends_the_task_as_lost(
    start_demo: Callable[..., DemoProcess], new_page: Callable[..., Any]
) -> None:
    """The demo restarts mid-task (in-memory hub): the job died with the process, the new one
    answers the page's resume with a reset, and the pane ends ("lost", the reason in place of
    the step count) with Start enabled, instead of hanging."""
    demo = start_demo()
    page = new_page(demo.url)
    start_long_task(page, 1000, 100)
    demo.stop()
    demo.start()
    assert_ended(page, "lost", "The server lost this task")


def test_a_restart_with_redis_ends_the_task(
    redis_server_process: RedisServer,
    start_demo: Callable[..., DemoProcess],
    new_page: Callable[..., Any],
) -> None:
    """With Redis the page's resume after a restart is no reset (the ids are still known):
    the stopping job publishes ``cancelled`` through the hub (services stop last started
    first, so the hub outlives the jobs), and the pane ends on it, Start enabled."""
    demo = start_demo("--broker", redis_server_process.url)
    page = new_page(demo.url)
    start_long_task(page, 100, 100)
    demo.stop()
    demo.start()
    page.wait_for_selector("#task .badge[data-state='error']", timeout=30_000)
    assert_ended(page, "cancelled", "the server stopped before the task ended")


def test_a_killed_server_ends_the_task_as_lost_after_a_silence(
    redis_server_process: RedisServer,
    start_demo: Callable[..., DemoProcess],
    new_page: Callable[..., Any],
) -> None:
    """SIGKILL: no ``cancelled`` event, and with Redis no reset either (the ids are still
    known), so the stream just goes quiet.  After three expected gaps plus the retry time
    with no progress the pane gives up: "lost", Start enabled."""
    demo = start_demo("--broker", redis_server_process.url)
    page = new_page(demo.url)
    start_long_task(page, 100, 100)  # an event every 100 ms: lost after 0.3 s + 5 s
    assert demo.process is not None
    demo.process.kill()  # by its PID, as the fixture would
    demo.process.wait(timeout=10)
    demo.process = None
    demo.start()
    assert_ended(page, "lost", "No progress for 5 s")
