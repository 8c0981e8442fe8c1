"""Several worker processes serving one port, supervised: ``rawstream ... --workers N``.

One Python process runs one Trio event loop on one core.  To use more cores, the supervisor
starts N copies of the ordinary single-process server (``python -m rawstream`` with the same
command line) that all listen on the same port with ``SO_REUSEPORT``: Linux hashes each new
connection to one of the listening sockets, so connections spread over the workers with no
process in between.  A connection stays with the worker that accepted it.

The supervisor:

* **reserves the port** before any worker exists: it binds a ``SO_REUSEPORT`` socket to
  ``host:port`` (port 0: the kernel picks a free one) and keeps it bound, but not listening, for
  its whole life.  A bound socket that does not listen receives no connections, yet no other
  program can take the port while workers restart;
* **starts the workers** with ``--port PORT --reuse-port --supervised`` appended (argparse
  takes the last value of an option).  Each worker sits in its own process group, so a Ctrl-C
  in a terminal reaches the supervisor alone, which then sends each worker exactly one SIGTERM
  (a worker treats a second signal as "stop at once").  A worker writes :data:`READY_MARKER` on
  stderr once it listens; the supervisor forwards every other stderr line, prefixed with the
  worker's number and pid, and logs ``rawstream listening on SCHEME://HOST:PORT (N workers)``
  once every worker has listened.  The worker's stdin is a pipe the supervisor never writes to:
  if the supervisor dies, even by SIGKILL, the workers read EOF and shut down gracefully;
* **restarts** a worker that exits while it is not stopping (a crash, a signal, even a clean
  exit) after a backoff: 0.5 s doubling up to 5 s for workers that keep dying, back to 0.5 s
  once a worker has lived 10 s.  A worker that cannot start therefore costs a process start
  every 5 s, not a spinning CPU;
* **gives up** if a worker exits before it ever listened while the workers are first starting
  (no such app file, a bad certificate, a port taken): the error is on stderr, the other
  workers are stopped and the supervisor exits 1 instead of restarting forever;
* **stops** on SIGINT or SIGTERM: it sends every worker SIGTERM (each drains as a single
  process does: SSE streams end with ``retry:``, WebSockets get close 1001), waits up to
  ``drain_timeout`` plus :data:`SHUTDOWN_MARGIN`, SIGKILLs the stragglers and exits 0.  A second
  signal is passed on too, so the workers stop at once.

Every process is waited for (reaped) in a ``finally``, whatever ends the supervisor.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence

import trio

from ..logs import WORKER_ENV
from .server import reuse_port_option

__all__ = ["READY_MARKER", "WORKER_ENV", "Supervisor", "reserve_port", "run_workers"]

log = logging.getLogger("rawstream.workers")

#: The line a supervised worker writes on stderr once it listens (followed by its port).
READY_MARKER = "rawstream-worker-ready"
#: Restart delay after a worker died; doubled for each quick death, up to MAX_BACKOFF.
INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 5.0
#: A worker that lived this long (seconds) was healthy: its next restart is quick again.
STABLE_AFTER = 10.0
#: Seconds past the workers' drain timeout before the supervisor SIGKILLs a worker.
SHUTDOWN_MARGIN = 5.0
#: Longest stderr line forwarded whole; a longer one is cut into pieces of this size.
MAX_LINE_BYTES = 64 * 1024
#: How long the stderr of a worker that exited may stay open (a child of the worker may hold it).
STDERR_GRACE = 1.0


def reserve_port(host: str | None, port: int) -> tuple[list[socket.socket], int]:
    """Bind (without listening) a ``SO_REUSEPORT`` socket on every address of ``host`` at
    ``port``, the first choosing the port when ``port`` is 0; return the sockets and the port.

    Workers listening on the port with ``SO_REUSEPORT`` share it with these sockets (same user);
    the sockets themselves receive no connections.  Keep them open while the workers run.
    """
    option = reuse_port_option()
    addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, type_, proto, _, sockaddr in dict.fromkeys(addresses):  # unique, in order
            sock = socket.socket(family, type_, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, option, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind((sockaddr[0], port, *sockaddr[2:]))
            except OSError as exc:
                where = f"{host or '*'}:{port}"
                raise OSError(exc.errno, f"cannot bind {where}: {exc.strerror}") from exc
            port = sock.getsockname()[1]  # the one the kernel chose, for the other addresses
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets, port


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


def _is_json(line: str) -> bool:
    """The line is a JSON object (a worker's ``--log-format json`` log line)."""
    if not line.startswith("{"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


class Supervisor:
    """Runs ``workers`` copies of ``command`` (a worker command line, see the module doc) and
    keeps them running until SIGINT or SIGTERM.

    Args:
        command: the full worker command, ``[sys.executable, "-m", "rawstream", ...]``.
        workers: how many workers to keep running.
        url: what the workers serve, for the log (``http://127.0.0.1:8000``).
        drain_timeout: the workers' drain timeout; a worker still running
            ``drain_timeout + SHUTDOWN_MARGIN`` seconds after SIGTERM is killed.
    """

    def __init__(
        self, command: Sequence[str], workers: int, *, url: str, drain_timeout: float
    ) -> None:
        self.command = list(command)
        self.workers = workers
        self.url = url
        self.drain_timeout = drain_timeout
        #: True once stopping (a signal, or a worker that could not start).
        self.stopping = False
        #: True if the workers could not start: the supervisor exits non-zero.
        self.failed = False
        self._processes: dict[int, trio.Process] = {}  # worker number -> running process
        self._listened: set[int] = set()  # worker numbers that have listened at least once
        self._started = False  # every worker has listened once
        self._stop_requested = trio.Event()
        self._kill_deadline = math.inf

    async def run(self) -> int:
        """Start the workers, keep them running until a signal, stop them; the exit status."""
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._stop_on_signals, signals)
                async with trio.open_nursery() as workers:
                    for number in range(1, self.workers + 1):
                        workers.start_soon(self._keep_running, number)
                nursery.cancel_scope.cancel()
        return 1 if self.failed else 0

    async def _stop_on_signals(self, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            name = signal.Signals(signum).name
            if not self.stopping:
                log.info(
                    "received %s: stopping %d worker(s) (again to stop them at once)",
                    name,
                    len(self._processes),
                )
            else:
                log.info("received %s again: telling the workers to stop at once", name)
            self._stop()

    def _stop(self) -> None:
        """Stop restarting and send every running worker SIGTERM (again on a second call)."""
        if not self.stopping:
            self.stopping = True
            self._kill_deadline = trio.current_time() + self.drain_timeout + SHUTDOWN_MARGIN
            self._stop_requested.set()
        for process in self._processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)

    async def _keep_running(self, number: int) -> None:
        """Run worker ``number`` and restart it, with backoff, whenever it exits unexpectedly."""
        backoff = INITIAL_BACKOFF
        while not self.stopping:
            began = trio.current_time()
            try:
                outcome, listened = await self._run_once(number)
            except OSError as exc:  # no process at all (fork failed, no interpreter...)
                outcome, listened = f"worker {number} could not be started ({exc})", False
            if self.stopping:
                return
            if not listened and not self._started:
                log.error("%s before it listened: the workers cannot start; stopping", outcome)
                self.failed = True
                self._stop()
                return
            if trio.current_time() - began >= STABLE_AFTER:
                backoff = INITIAL_BACKOFF
            log.warning("%s; restarting it in %.1f s", outcome, backoff)
            with trio.move_on_after(backoff):
                await self._stop_requested.wait()
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _run_once(self, number: int) -> tuple[str, bool]:
        """Start worker ``number`` and wait until it has exited and been reaped; return how it
        ended, for the log, and whether it reported that it listens."""
        process = await trio.lowlevel.open_process(
            self.command,
            env={**os.environ, WORKER_ENV: str(number)},
            stdin=subprocess.PIPE,  # never written: EOF tells the worker we are gone
            stderr=subprocess.PIPE,
            process_group=0,  # a terminal's Ctrl-C reaches the supervisor alone
        )
        self._processes[number] = process
        listened = trio.Event()
        try:
            if self.stopping:  # the stop came while the process was being started
                process.send_signal(signal.SIGTERM)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._forward_stderr, number, process, listened)
                await self._wait(number, process)
                # The rest of its stderr, unless a child of the worker holds the pipe open.
                nursery.cancel_scope.deadline = trio.current_time() + STDERR_GRACE
        finally:
            del self._processes[number]
            with trio.CancelScope(shield=True):
                if process.returncode is None:
                    process.kill()
                await process.wait()  # reaped, whatever happened
                for pipe in (process.stdin, process.stderr):
                    if pipe is not None:
                        await pipe.aclose()
        assert process.returncode is not None
        outcome = f"worker {number} (pid {process.pid}) {_describe_exit(process.returncode)}"
        return outcome, listened.is_set()

    async def _wait(self, number: int, process: trio.Process) -> None:
        """Wait for the worker to exit; once stopping, kill it at the deadline."""

        async def kill_at_deadline() -> None:
            await self._stop_requested.wait()
            await trio.sleep_until(self._kill_deadline)
            log.warning(
                "worker %d (pid %d) still running %.1f s after SIGTERM: killing it",
                number,
                process.pid,
                self.drain_timeout + SHUTDOWN_MARGIN,
            )
            process.kill()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(kill_at_deadline)
            await process.wait()
            nursery.cancel_scope.cancel()

    async def _forward_stderr(
        self, number: int, process: trio.Process, listened: trio.Event
    ) -> None:
        """Copy the worker's stderr to ours line by line, prefixed with the worker's number
        and pid (JSON log lines carry them as fields, and pass as they are); spot its ready
        line."""
        assert process.stderr is not None
        prefix = f"[worker {number} pid {process.pid}] "
        pending = bytearray()

        def emit(raw: bytes) -> None:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith(READY_MARKER):
                listened.set()
                self._on_listening(number, process.pid)
            else:  # (a JSON log line names its worker and pid itself: passed as it is)
                sys.stderr.write(line + "\n" if _is_json(line) else prefix + line + "\n")
                sys.stderr.flush()

        while chunk := await process.stderr.receive_some():
            pending += chunk
            while (end := pending.find(b"\n")) >= 0:
                emit(bytes(pending[: end + 1]))
                del pending[: end + 1]
            while len(pending) >= MAX_LINE_BYTES:
                emit(bytes(pending[:MAX_LINE_BYTES]))
                del pending[:MAX_LINE_BYTES]
        if pending:
            emit(bytes(pending))

    def _on_listening(self, number: int, pid: int) -> None:
        if self._started:
            log.info("worker %d (pid %d) listening again", number, pid)
            return
        self._listened.add(number)
        if len(self._listened) == self.workers:
            self._started = True
            log.info("rawstream listening on %s (%d workers)", self.url, self.workers)


def run_workers(
    worker_argv: Sequence[str],
    workers: int,
    *,
    host: str | None,
    port: int,
    scheme: str = "http",
    drain_timeout: float = 10.0,
    channels_per_process: bool = True,
) -> int:
    """Serve one port with ``workers`` processes of ``python -m rawstream WORKER_ARGV`` until
    SIGINT or SIGTERM; return the exit status (0 after a signal, 1 if they could not start).

    ``worker_argv`` is the command line of one single-process server (no ``--workers``): the
    supervisor appends ``--port PORT --reuse-port --supervised``.  ``channels_per_process``
    says the app's channels live in each process (the in-memory hub): a warning says so.
    """
    if not sys.platform.startswith("linux"):
        log.error("--workers needs Linux (SO_REUSEPORT spreading connections over processes)")
        return 1
    try:
        reserved, port = reserve_port(host, port)
    except OSError as exc:
        log.error("%s", exc)
        return 1
    try:
        if channels_per_process:
            log.warning(
                "the in-memory hub is per process: with %d workers, each worker has its own "
                "channels and history; use --broker redis://... to share them",
                workers,
            )
        command = [
            sys.executable,
            "-m",
            "rawstream",
            *worker_argv,
            "--port",
            str(port),
            "--reuse-port",
            "--supervised",
        ]
        url = f"{scheme}://{host or '0.0.0.0'}:{port}"
        supervisor = Supervisor(command, workers, url=url, drain_timeout=drain_timeout)
        log.debug("worker command: %s", " ".join(command))
        return trio.run(supervisor.run)
    finally:
        for sock in reserved:
            sock.close()
