"""examples/presence.py's page in a real browser: two tabs see each other's count, names and
cursor, and the count goes down when one closes.  Debian's chromium through Playwright (no
browser download; the ``browser`` and ``new_page`` fixtures of support.browser, as in
tests/browser); skipped without them on a laptop, failed under CI=true."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import require
from support.cli import start_cli, stop_process


@pytest.fixture
def base() -> Iterator[str]:
    process, port = start_cli("run", "examples/presence.py")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process, timeout=15)


def test_two_tabs_see_each_other(base: str, new_page: Callable[..., Any]) -> None:
    """(An uncaught error in either page's script fails the test, as in tests/browser.)"""
    sync_api = require("playwright.sync_api", "the page test drives chromium with it")
    expect = sync_api.expect
    ann = new_page(f"{base}/?name=ann")
    expect(ann.locator("#count")).to_have_text("1")
    bob = new_page(f"{base}/?name=bob", tab_of=ann)
    expect(ann.locator("#count")).to_have_text("2")
    expect(ann.locator("#names")).to_have_text("ann, bob")
    expect(bob.locator("#names")).to_have_text("ann, bob")
    box = bob.locator("#area").bounding_box()
    bob.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 4)
    bob_cursor = ann.locator(".c", has_text="bob")
    expect(bob_cursor).to_be_visible()
    expect(bob_cursor).to_have_attribute("style", "left: 50%; top: 25%;")
    expect(bob.locator(".c", has_text="bob")).to_be_hidden()  # your own: not drawn
    bob.close()
    expect(ann.locator("#count")).to_have_text("1")
    expect(ann.locator("#names")).to_have_text("ann")
    expect(bob_cursor).to_have_count(0)
