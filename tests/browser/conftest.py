"""Fixtures for the browser tests: Debian's chromium driven by Playwright (sync API), and the
demo as a real ``rawstream demo`` subprocess on a fixed port (so a test can stop it and start
it again where the page expects it).

Playwright never downloads a browser here: it launches the ``chromium`` program the system
has (``apt-get install chromium``) through ``executable_path``.  Without Playwright or chromium
the tests are skipped with the reason on a laptop, and fail under ``CI=true``.

Every test leaves a screenshot of its final state in ``tests/artifacts/`` (gitignored), named
after the test, whether it passed or not.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from conftest import missing, require, require_redis_server
from support.redis import RedisServer, free_port, redis_server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"

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

#: Seconds a demo process gets to report that it listens, and to exit after SIGTERM.
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0


def chromium_path() -> str:
    """The system's chromium (Debian: /usr/bin/chromium)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        missing(
            "chromium is not installed (the browser tests drive the system's chromium; "
            "Playwright downloads none): apt-get install chromium"
        )
    return path


# -- the browser -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless chromium for this module's tests (module scope: launched once per file,
    and Playwright's event loop is gone before the next file's trio tests run)."""
    sync_api = require("playwright.sync_api", "the browser tests drive chromium with it")
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
    uses, so the screenshot is taken before they stop)."""
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
            try:
                page.screenshot(path=str(ARTIFACTS / f"{name}{suffix}.png"), full_page=True)
            except Exception as exc:  # a crashed page must not hide the test's own failure
                print(f"no screenshot of {name}{suffix}: {exc}", file=sys.stderr)
        for context in contexts:
            context.close()


# -- the demo server -------------------------------------------------------------------------


class DemoProcess:
    """``rawstream demo`` in a subprocess on ``127.0.0.1:port``, its log in ``log_path``.

    ``start()`` waits until it listens; ``stop()`` sends SIGTERM (a graceful drain: SSE
    streams get ``retry:``, WebSockets 1001) and waits, SIGKILL as a last resort.  Both can
    be called again: the port stays the same, as a restarted server's would.
    """

    def __init__(self, log_path: Path, args: tuple[str, ...], port: int) -> None:
        self.log_path = log_path
        self.args = args
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it and wait until its log says it listens (raises if it exits first)."""
        assert self.process is None, "already running"
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "rawstream",
                    "demo",
                    *self.args,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        ready = f"listening on http://127.0.0.1:{self.port}".encode()
        deadline = time.monotonic() + START_TIMEOUT
        while ready not in self.log_path.read_bytes()[offset:]:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"rawstream demo did not start on {self.port}:\n{tail}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, wait for the drain, SIGKILL if it does not end; reaped either way."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def start_demo(tmp_path: Path) -> Iterator[Callable[..., DemoProcess]]:
    """``demo = start_demo("--token-rate", "40")``: a started :class:`DemoProcess` on a free
    port, stopped (by its PID) after the test."""
    started: list[DemoProcess] = []

    def start(*args: str) -> DemoProcess:
        for attempt in range(3):  # the free port may be taken between the check and the bind
            demo = DemoProcess(tmp_path / f"demo-{len(started)}.log", args, free_port())
            started.append(demo)
            try:
                demo.start()
            except RuntimeError:
                if attempt == 2:
                    raise
                continue
            return demo
        raise AssertionError("unreachable")

    try:
        yield start
    finally:
        for demo in started:
            demo.stop()


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own (persistence off), stopped by its PID after it."""
    require("coredis", "the Redis hub's client")
    require_redis_server("the ticker restart test keeps the channel in a real one")
    with redis_server(tmp_path / "redis") as server:
        yield server


def publish_through_redis(
    url: str, channel: str, messages: list[tuple[str, str | None]]
) -> list[str]:
    """Publish ``(data, event)`` messages to ``channel`` through a RedisHub of the test's own
    (as another node would while the demo is down); return their ids."""
    from rawstream.hub.redis import RedisHub

    async def publish() -> list[str]:
        hub = RedisHub(url)
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                await nursery.start(hub.run)
                ids = [await hub.publish(channel, data, event) for data, event in messages]
                nursery.cancel_scope.cancel()
        return ids

    return trio.run(publish)
