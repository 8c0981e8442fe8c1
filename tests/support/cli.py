"""Start a server command in a subprocess and learn the port it bound."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]

_LISTENING = re.compile(r"listening on https?://127\.0\.0\.1:(\d+)")


def start_server_process(argv: list[str]) -> tuple[subprocess.Popen[str], int]:
    """Run ``argv`` (a command that logs ``listening on http://127.0.0.1:PORT`` on stderr);
    return the process and its bound port.

    The rest of stderr is drained by a thread, so a chatty server never blocks on a full pipe.
    """
    process = subprocess.Popen(
        argv,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    for line in process.stderr:
        found = _LISTENING.search(line)
        if found:
            threading.Thread(target=_drain, args=(process.stderr,), daemon=True).start()
            return process, int(found.group(1))
    process.wait(timeout=10)
    raise AssertionError(f"{' '.join(argv)} did not report its port")


def start_cli(*args: str) -> tuple[subprocess.Popen[str], int]:
    """Run ``python -m rawstream ARGS --port 0``; return the process and its bound port."""
    return start_server_process([sys.executable, "-m", "rawstream", *args, "--port", "0"])


def _drain(stream: IO[str]) -> None:
    try:
        for _ in stream:
            pass
    except ValueError:  # closed by the test's cleanup meanwhile
        pass


def stop_process(process: subprocess.Popen[Any], timeout: float = 10) -> int:
    """Stop a process this test started: SIGTERM to its PID, then SIGKILL if it has not
    exited within ``timeout`` seconds; once it has ended, close the pipes this test read
    (its stderr, and its stdout if that is one).  Returns its exit code (the caller asserts
    on it after its own ``finally``, so a failure there does not hide the test's)."""
    process.terminate()
    try:
        returncode = process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        returncode = process.wait()
    for pipe in (process.stderr, process.stdout):
        if pipe is not None:
            pipe.close()
    return returncode
