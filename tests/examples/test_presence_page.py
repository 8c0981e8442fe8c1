"""examples/presence.py's page in a real browser: two tabs see each other's count, names and
cursor, and the count goes down when one closes.  Debian's chromium through Playwright (no
browser download); skipped without them on a laptop, failed under CI=true."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import missing, require
from support.cli import start_cli, stop_process

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]


@pytest.fixture
def base() -> Iterator[str]:
    process, port = start_cli("run", "examples/presence.py")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process, timeout=15)
        if process.stderr is not None:
            process.stderr.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    sync_api = require("playwright.sync_api", "the page test drives chromium with it")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        missing(
            "chromium is not installed (the page test drives the system's chromium; "
            "Playwright downloads none): apt-get install chromium"
        )
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def test_two_tabs_see_each_other(base: str, browser: Any) -> None:
    """(An uncaught error in either page's script fails the test, as in tests/browser.)"""
    sync_api = require("playwright.sync_api", "the page test drives chromium with it")
    expect = sync_api.expect
    ann, bob = browser.new_page(), browser.new_page()
    errors: list[str] = []
    for name, tab in (("ann", ann), ("bob", bob)):
        tab.on("pageerror", lambda error, name=name: errors.append(f"{name}'s page: {error}"))
    try:
        ann.goto(f"{base}/?name=ann")
        expect(ann.locator("#count")).to_have_text("1")
        bob.goto(f"{base}/?name=bob")
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
        assert not errors, errors
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        ann.screenshot(path=str(ARTIFACTS / "examples-presence.png"))
