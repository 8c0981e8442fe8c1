"""The long-task pane: POST /tasks, then a progress bar driven by the task's SSE events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
