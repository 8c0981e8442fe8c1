"""The page as a whole: served by rawstream, four panes, one column in a narrow window."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .conftest import DemoProcess

PANES = ["#ticker", "#chat", "#llm", "#task"]


def pane_boxes(page: Any) -> list[dict[str, float]]:
    """Each pane's bounding box, in page order."""
    return [page.locator(pane).bounding_box() for pane in PANES]


def test_wide_window_shows_a_two_by_two_grid(
    start_demo: Callable[..., DemoProcess], new_page: Callable[..., Any]
) -> None:
    """At 1280 px the four panes form two columns of two, and every pane's state badge shows
    its initial state (the ticker goes live by itself)."""
    demo = start_demo()
    page = new_page(demo.url, width=1280)
    page.wait_for_selector("#ticker .badge[data-state='live']")
    ticker, chat, llm, task = pane_boxes(page)
    assert ticker["y"] == chat["y"] and llm["y"] == task["y"] > ticker["y"]
    assert ticker["x"] == llm["x"] < chat["x"] == task["x"]
    assert page.text_content("#chat .badge") == "not joined"
    assert page.text_content("#llm .badge") == "idle"
    assert page.title() == "rawstream demo"


def test_narrow_window_stacks_the_panes(
    start_demo: Callable[..., DemoProcess], new_page: Callable[..., Any]
) -> None:
    """At 400 px the panes stack in one column, none wider than the window (no sideways
    scrolling), and the ticker still goes live."""
    demo = start_demo()
    page = new_page(demo.url, width=400)
    page.wait_for_selector("#ticker .badge[data-state='live']")
    boxes = pane_boxes(page)
    assert len({box["x"] for box in boxes}) == 1
    assert [box["y"] for box in boxes] == sorted(box["y"] for box in boxes)
    assert all(box["x"] >= 0 and box["x"] + box["width"] <= 400 for box in boxes)
    assert page.evaluate("document.documentElement.scrollWidth") <= 400
