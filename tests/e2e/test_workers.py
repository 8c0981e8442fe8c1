"""``--workers N``: several processes serve one port (SO_REUSEPORT) under a supervisor.

Real processes on 127.0.0.1: the supervisor is ``python -m rawstream ... --workers 2``, its
workers are its children.  A test tells the workers apart by the ``pid`` in the demo's
``/healthz``, and ends only processes it started, by pid: the supervisor, and any worker still
alive after it (which the supervisor should already have reaped).
"""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from conftest import require
from support.cli import ROOT
from trio_websocket import ConnectionClosed, open_websocket_url

from rawstream import App, Request, Response, Server, serve
from rawstream.cli import _worker_argv, main

#: Every wait on another process is bounded by this (seconds).
PATIENCE = 20


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists and is one of our rawstream workers (guards against pid reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"rawstream" in cmdline and b"--supervised" in cmdline


class Supervisor:
    """A ``rawstream ... --workers N`` process started by a test, and its stderr so far."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self.port = 0
        #: Worker pids seen on stderr or in /healthz answers (for the cleanup).
        self.worker_pids: set[int] = set()
        self._eof = False
        self._new_line = trio.Event()

    async def read_stderr(self) -> None:
        """Collect stderr lines (and the worker pids they name) until EOF."""
        assert self.process.stderr is not None
        pending = b""
        while chunk := await self.process.stderr.receive_some():
            *complete, pending = (pending + chunk).split(b"\n")
            for raw in complete:
                line = raw.decode("utf-8", "replace")
                self.lines.append(line)
                if found := re.match(r"\[worker \d+ pid (\d+)\]", line):
                    self.worker_pids.add(int(found.group(1)))
            self._new_line.set()
            self._new_line = trio.Event()
        self._eof = True
        self._new_line.set()

    async def wait_for_line(self, pattern: str) -> re.Match[str]:
        """The first stderr line matching ``pattern``, waiting up to PATIENCE seconds for it."""
        checked = 0
        with trio.fail_after(PATIENCE):
            while True:
                for line in self.lines[checked:]:
                    if found := re.search(pattern, line):
                        return found
                checked = len(self.lines)
                if self._eof:
                    stderr = "\n".join(self.lines)
                    raise AssertionError(f"no line matches {pattern!r} in stderr:\n{stderr}")
                await self._new_line.wait()

    async def healthz_pid(self, client: httpx.AsyncClient) -> int:
        """Ask /healthz over the client (a fresh connection each time): the answering pid."""
        response = await client.get(f"{self.base}/healthz")
        assert response.status_code == 200
        pid = int(response.json()["pid"])
        self.worker_pids.add(pid)
        return pid

    async def both_pids(self, client: httpx.AsyncClient) -> set[int]:
        """Fresh connections until two different workers answered (at most 200 tries)."""
        pids: set[int] = set()
        for _ in range(200):
            pids.add(await self.healthz_pid(client))
            if len(pids) == 2:
                break
        return pids

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return "\n".join(self.lines)


def fresh_connections(**kwargs: Any) -> httpx.AsyncClient:
    """An httpx client that opens a new TCP connection for every request, so the kernel picks
    a worker for each."""
    return httpx.AsyncClient(timeout=5, limits=httpx.Limits(max_keepalive_connections=0), **kwargs)


StartWorkers = Callable[..., Coroutine[Any, Any, Supervisor]]


@pytest.fixture
async def start_workers(nursery: trio.Nursery) -> AsyncIterator[StartWorkers]:
    """``supervisor = await start_workers("demo", "--workers", "2")``: started with ``--port 0``
    and a short drain timeout, returned once it reports every worker listening.  Afterwards,
    whatever the test did: SIGTERM (then SIGKILL) the supervisor, then SIGKILL any worker that
    outlived it."""
    started: list[Supervisor] = []

    async def start(*args: str) -> Supervisor:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "rawstream", *args, "--port", "0", "--drain-timeout", "3"],
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        supervisor = Supervisor(process)
        started.append(supervisor)
        nursery.start_soon(supervisor.read_stderr)
        found = await supervisor.wait_for_line(
            r"rawstream listening on https?://127\.0\.0\.1:(\d+) \(\d+ workers\)"
        )
        supervisor.port = int(found.group(1))
        return supervisor

    try:
        yield start
    finally:
        with trio.CancelScope(shield=True):
            for supervisor in started:
                process = supervisor.process
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
                    with trio.move_on_after(PATIENCE):
                        await process.wait()
                    if process.returncode is None:
                        process.kill()
                        await process.wait()
                for pid in supervisor.worker_pids:
                    if _alive(pid):
                        os.kill(pid, signal.SIGKILL)


async def test_two_workers_answer_on_one_port(start_workers: StartWorkers) -> None:
    """`demo --workers 2`: fresh connections reach both workers; stderr names the port first,
    as a single process would, then the supervisor's line and the per-process hub warning."""
    supervisor = await start_workers("demo", "--workers", "2")
    async with fresh_connections() as client:
        pids = await supervisor.both_pids(client)
    assert len(pids) == 2
    assert supervisor.process.pid not in pids
    # What tests/support/cli.py's start_cli reads: the first "listening on" line has the port.
    first = await supervisor.wait_for_line(r"listening on https?://127\.0\.0\.1:(\d+)")
    assert int(first.group(1)) == supervisor.port
    warning = await supervisor.wait_for_line(r"WARNING the in-memory hub is per process")
    assert "with 2 workers" in warning.string and "--broker" in warning.string


async def test_killed_worker_is_restarted(start_workers: StartWorkers) -> None:
    """SIGKILL one worker: the other keeps answering every request, and a new worker with a new
    pid joins within a bounded time."""
    supervisor = await start_workers("demo", "--workers", "2")
    async with fresh_connections() as client:
        pids = await supervisor.both_pids(client)
        assert len(pids) == 2
        victim, survivor = sorted(pids)
        os.kill(victim, signal.SIGKILL)
        # Once the supervisor has seen it die, its listening socket is closed: from then on,
        # every connection must be answered, by the survivor until the new worker listens.
        await supervisor.wait_for_line(rf"\(pid {victim}\) was killed by SIGKILL; restarting")
        answers: list[int] = []
        with trio.fail_after(PATIENCE):
            while not set(answers) - {survivor}:
                answers.append(await supervisor.healthz_pid(client))
                await trio.sleep(0.01)  # pace the polling; the new worker takes ~1 s to start
    assert victim not in answers
    assert supervisor.process.returncode is None
    await supervisor.wait_for_line(r"listening again")


async def test_sigterm_drains_every_worker_and_exits_zero(start_workers: StartWorkers) -> None:
    """SIGTERM to the supervisor while an SSE client and a WebSocket client are connected: the
    SSE stream gets a retry: hint and a clean end, the WebSocket close 1001, every worker
    exits, and the supervisor exits 0."""
    supervisor = await start_workers("demo", "--workers", "2")
    async with fresh_connections() as client:
        worker_pids = await supervisor.both_pids(client)
    assert len(worker_pids) == 2

    lines: list[str] = []
    signalled_at: list[int] = []  # index in `lines` when the signal went out
    sse_open, ws_open, signalled = trio.Event(), trio.Event(), trio.Event()
    ws_codes: list[int] = []

    async def sse_client() -> None:
        async with (
            httpx.AsyncClient(timeout=PATIENCE) as client,
            client.stream("GET", f"{supervisor.base}/events") as response,
        ):
            async for line in response.aiter_lines():
                lines.append(line)
                if line == "event: tick":
                    sse_open.set()
        # The loop ended because the chunked body ended cleanly (a cut stream would raise).

    async def websocket_client() -> None:
        async with open_websocket_url(f"ws://127.0.0.1:{supervisor.port}/ws/echo") as ws:
            await ws.send_message("ping")
            assert await ws.get_message() == "ping"
            ws_open.set()
            await signalled.wait()
            try:
                await ws.get_message()
            except ConnectionClosed as exc:
                ws_codes.append(exc.reason.code)

    with trio.fail_after(PATIENCE):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sse_client)
            nursery.start_soon(websocket_client)
            await sse_open.wait()
            await ws_open.wait()
            signalled_at.append(len(lines))
            supervisor.process.send_signal(signal.SIGTERM)
            signalled.set()
        code = await supervisor.process.wait()

    assert any(line.startswith("retry:") for line in lines[signalled_at[0] :]), lines
    assert ws_codes == [1001]
    assert code == 0, supervisor.stderr()
    # The supervisor reaped its workers before exiting: not even zombies are left.
    for pid in worker_pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_workers_that_cannot_start_fail_fast() -> None:
    """`run does_not_exist.py:app --workers 2` exits non-zero at once, the worker's error shown,
    instead of restarting workers forever."""
    command = ["run", "does_not_exist.py:app", "--workers", "2", "--port", "0"]
    with trio.fail_after(PATIENCE):  # on timeout run_process kills the supervisor
        result = await trio.run_process(
            [sys.executable, "-m", "rawstream", *command],
            cwd=ROOT,
            capture_stderr=True,
            check=False,
        )
    stderr = result.stderr.decode()
    assert result.returncode != 0, stderr
    assert "no such file: does_not_exist.py" in stderr
    assert "the workers cannot start" in stderr


async def test_workers_over_tls(start_workers: StartWorkers, tmp_path: Path) -> None:
    """--certfile passes through to every worker: the supervisor reports https, and both
    workers answer over TLS."""
    trustme = require("trustme", "TLS test certificates")
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(tmp_path / "server.pem")
    )
    supervisor = await start_workers(
        "demo", "--workers", "2", "--certfile", str(tmp_path / "server.pem")
    )
    assert re.search(r"listening on https://127\.0\.0\.1:\d+ \(2 workers\)", supervisor.stderr())
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    pids: set[int] = set()
    async with fresh_connections(verify=client_context) as client:
        for _ in range(200):
            response = await client.get(f"https://127.0.0.1:{supervisor.port}/healthz")
            pids.add(int(response.json()["pid"]))
            if len(pids) == 2:
                break
    assert len(pids) == 2


def named_app(name: str) -> App:
    """An app whose ``/whoami`` answers ``name``: tells apart servers in one process (the
    demo's ``/healthz`` pid cannot)."""
    app = App()

    @app.get("/whoami")
    async def whoami(request: Request) -> Response:
        return Response.text(name)

    return app


async def test_reuse_port_lets_two_servers_share_a_port(nursery: trio.Nursery) -> None:
    """serve(reuse_port=True): a second server binds the first one's port, and both serve:
    fresh connections (the kernel hashes each to one of the two listening sockets) reach
    each of them within 200 tries (a miss has odds of about 2**-199)."""
    first: Server = await nursery.start(partial(serve, named_app("first"), port=0, reuse_port=True))
    second: Server = await nursery.start(
        partial(serve, named_app("second"), port=first.port, reuse_port=True)
    )
    assert second.port == first.port
    answered: list[str] = []
    with trio.fail_after(PATIENCE):
        async with fresh_connections() as client:
            for _ in range(200):
                response = await client.get(f"http://127.0.0.1:{first.port}/whoami")
                assert response.status_code == 200
                answered.append(response.text)
                if set(answered) == {"first", "second"}:
                    break
    assert set(answered) == {"first", "second"}, f"only {set(answered)} in {len(answered)} tries"
    first.shutdown()
    second.shutdown()


def test_worker_command_line_drops_only_workers_and_port() -> None:
    """The worker runs the user's command line minus --workers and --port, whatever else it
    holds (options added later pass through untouched)."""
    argv = ["run", "app.py:app", "--workers", "4", "--port=9000", "--broker", "redis://x"]
    assert _worker_argv(argv) == ["run", "app.py:app", "--broker", "redis://x"]
    argv = ["demo", "--workers=2", "--port", "0", "--log-level", "debug"]
    assert _worker_argv(argv) == ["demo", "--log-level", "debug"]


@pytest.mark.parametrize("count", ["0", "-1", "many"])
def test_workers_must_be_at_least_one(count: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--workers takes a whole number >= 1; anything else is a usage error (status 2)."""
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--workers", count])
    assert exit_info.value.code == 2
    assert "--workers" in capsys.readouterr().err
