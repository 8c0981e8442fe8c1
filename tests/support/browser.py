"""Debian's chromium driven by Playwright (sync API), for tests/browser and the example page
tests: the ``browser`` and ``new_page`` fixtures (import them into a conftest or test module).

Playwright never downloads a browser here: it launches the ``chromium`` program the system
has (``apt-get install chromium``) through ``executable_path``.  Without Playwright or chromium
a test is skipped with the reason on a laptop, and fails under ``CI=true``.

Every page a test opened leaves a screenshot of its final state in ``tests/artifacts/``
(gitignored), named after the test, whether it passed or not; an uncaught error in a page's
script fails the test.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import missing, require

__all__ = ["ARTIFACTS", "CHROMIUM_ARGS", "browser", "chromium_path", "new_page"]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

#: Chromium flags for a headless run in a container: no sandbox (no user namespaces in CI
#: containers), no GPU, and none of the background traffic a fresh profile starts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

_REASON = "the browser tests drive chromium with it"


def chromium_path() -> str:
    """The system's chromium (Debian: /usr/bin/chromium)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        missing(
            "chromium is not installed (the browser tests drive the system's chromium; "
            "Playwright downloads none): apt-get install chromium"
        )
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless chromium for this module's tests (module scope: launched once per file,
    and Playwright's event loop is gone before the next file's trio tests run)."""
    sync_api = require("playwright.sync_api", _REASON)
    executable = chromium_path()
    playwright = sync_api.sync_playwright().start()
    try:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
    finally:
        playwright.stop()


@pytest.fixture
def new_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """``page = new_page(url, width=1280)``: a tab in a fresh browser context (or, with
    ``tab_of=page``, another tab beside that one), every wait bounded by 10 s.  An uncaught
    error in a page's script fails the test; each page's final state is saved as
    ``tests/artifacts/TEST[-N].png`` (list this fixture after those of the servers the page
    uses, so the screenshot is taken before they stop; a page the test closed has none)."""
    contexts: list[Any] = []
    pages: list[Any] = []
    errors: list[str] = []

    def open_page(url: str, *, width: int = 1280, height: int = 900, tab_of: Any = None) -> Any:
        if tab_of is not None:
            context = tab_of.context
        else:
            context = browser.new_context(viewport={"width": width, "height": height})
            context.set_default_timeout(10_000)
            contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
        pages.append(page)
        page.goto(url)
        return page

    try:
        yield open_page
        assert not errors, errors
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        for index, page in enumerate(pages):
            suffix = f"-{index + 1}" if len(pages) > 1 else ""
            if page.is_closed():
                continue
            try:
                page.screenshot(path=str(ARTIFACTS / f"{name}{suffix}.png"), full_page=True)
            except Exception as exc:  # a crashed page must not hide the test's own failure
                print(f"no screenshot of {name}{suffix}: {exc}", file=sys.stderr)
        for context in contexts:
            context.close()
