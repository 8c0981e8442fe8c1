"""Fixtures for the browser tests: Debian's chromium driven by Playwright (sync API: the
``browser`` and ``new_page`` fixtures of support.browser, which says how), and the demo as a
real ``rawstream demo`` subprocess on a fixed port (so a test can stop it and start it again
where the page expects it).

Without Playwright or chromium the tests are skipped with the reason on a laptop, and fail
under ``CI=true``.  Every test leaves a screenshot of its final state in ``tests/artifacts/``
(gitignored), named after the test, whether it passed or not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio
from support.browser import browser, new_page  # noqa: F401 (fixtures for these tests)
from support.cli import ROOT, stop_process
from support.rawhttp import free_port

#: Seconds a demo process gets to report that it listens, and to exit after SIGTERM.
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0


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
        if process is not None:
            stop_process(process, timeout=STOP_TIMEOUT)


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
