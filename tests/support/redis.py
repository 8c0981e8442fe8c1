"""A throwaway ``redis-server`` for tests: a free 127.0.0.1 port, persistence off, its own dir.

``with redis_server(tmp_path) as server:`` starts one, waits until it answers PING, and stops
it (by its PID) on the way out.  Fault tests stop, restart (same port, empty: persistence is
off), pause (``SIGSTOP``: connections stay open, nothing answers) and resume it, and can make
it drop its clients' connections (``CLIENT KILL``), through the :class:`RedisServer` methods.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import trio

from support.cli import stop_process
from support.rawhttp import free_port

__all__ = ["REDIS_SERVER", "RedisServer", "redis_server"]

#: The binary (None when redis-server is not installed).
REDIS_SERVER = shutil.which("redis-server")

_START_TIMEOUT = 10.0


class RedisServer:
    """One redis-server process on ``127.0.0.1:port`` (see the module doc)."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed")
        self.directory = directory
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.process is not None, "not running"
        return self.process.pid

    # -- starting and stopping -------------------------------------------------------------------

    def _spawn(self) -> None:
        assert self.process is None, "already running"
        assert REDIS_SERVER is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 (the child keeps it)
        try:
            self.process = subprocess.Popen(
                [
                    REDIS_SERVER,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.directory),
                    "--daemonize",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()

    def _check_started(self) -> bool:
        """Whether it answers PING yet (raises if the process died: port taken, say)."""
        assert self.process is not None
        if self.process.poll() is not None:
            log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
            self.process = None
            raise RuntimeError(f"redis-server exited at start on port {self.port}:\n{log}")
        try:
            return self.command("PING", timeout=0.5) == "PONG"
        except OSError:
            return False

    def start(self) -> None:
        """Start it (on ``self.port``) and wait until it answers; blocks the thread."""
        self._spawn()
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._check_started():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.02)

    async def start_async(self) -> None:
        """:meth:`start` for a running trio test: waits without blocking the event loop."""
        self._spawn()
        with trio.fail_after(_START_TIMEOUT):
            while not self._check_started():  # noqa: ASYNC110 (polling another process)
                await trio.sleep(0.02)

    def stop(self) -> None:
        """Stop it by its PID (SIGTERM, then SIGKILL after 5 s) and reap it."""
        process, self.process = self.process, None
        if process is None:
            return
        if self.paused:  # a stopped process handles SIGTERM only once continued
            os.kill(process.pid, signal.SIGCONT)
            self.paused = False
        stop_process(process, timeout=5)

    def pause(self) -> None:
        """SIGSTOP: its connections stay open and nothing answers (a hung server)."""
        os.kill(self.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT: it answers again, its data intact."""
        os.kill(self.pid, signal.SIGCONT)
        self.paused = False

    # -- talking to it ----------------------------------------------------------------------------

    def command(self, *args: str, timeout: float = 2.0) -> str | None:
        """Send one command; return its reply if it is a simple string, an integer or a
        bulk string (None for a null one); raise for an error.  Blocking and minimal: for
        test plumbing (an array reply gives just its header line)."""
        request = f"*{len(args)}\r\n" + "".join(
            f"${len(arg.encode())}\r\n{arg}\r\n" for arg in args
        )
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(request.encode())
            reply = b""
            while b"\r\n" not in reply or (reply.startswith(b"$") and not _bulk_complete(reply)):
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectionError("redis-server closed the connection")
                reply += chunk
        head, _, rest = reply.partition(b"\r\n")
        kind, value = head[:1], head[1:].decode()
        if kind == b"-":
            raise RuntimeError(f"redis error: {value}")
        if kind == b"$":
            return None if int(value) < 0 else rest[: int(value)].decode()
        return value

    def kill_clients(self) -> int:
        """Drop every normal client connection (``CLIENT KILL TYPE normal``); Redis and its
        data stay.  Returns how many were dropped."""
        return int(self.command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes") or 0)


def _bulk_complete(reply: bytes) -> bool:
    """Whether ``reply`` (starting with ``$``) holds its whole bulk string."""
    head, _, rest = reply.partition(b"\r\n")
    size = int(head[1:])
    return size < 0 or len(rest) >= size + 2


@contextmanager
def redis_server(directory: Path) -> Iterator[RedisServer]:
    """A started :class:`RedisServer` in ``directory``, stopped (by PID) on exit."""
    for _attempt in range(3):  # the free port may be taken between the check and the bind
        server = RedisServer(directory)
        try:
            server.start()
        except RuntimeError:
            server.stop()
            continue
        break
    else:
        raise RuntimeError("could not start redis-server (see redis.log in " + str(directory) + ")")
    try:
        yield server
    finally:
        server.stop()
