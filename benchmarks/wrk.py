"""The wrk driver: plain HTTP requests, measured by Debian's ``wrk`` (C, one epoll thread),
which measures the server rather than itself, as a Python load generator would at these
rates.  Used by ``run.py`` for the workloads whose ``driver`` is ``"wrk"``.

:func:`run` first checks the route by hand (``GET /healthz`` answers 200, and with
``Connection: close`` the server closes the connection after its answer: otherwise the
close workload would measure keep-alive), then runs::

    wrk -t1 -cC -dDs --latency [-H "Connection: close"] http://127.0.0.1:PORT/healthz

with the load generator's CPU pinning, and returns what ``loadgen.py`` returns: ``ok``,
``requests_per_s``, ``p50_ms``/``p99_ms`` (wrk's latency distribution), the wall time, and
the CPU time wrk and the server spent in it (``client_busy``/``server_busy``).  Not ok: wrk
missing, wrk failing, any non-2xx answer or socket error, no request at all.
"""

from __future__ import annotations

import re
import resource
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

from procstat import cpu_seconds_of

MISSING = "wrk not installed: apt-get install wrk"
PATH = "/healthz"

#: wrk's time units, in milliseconds.
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
PERCENTILE = re.compile(r"^\s*(\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
REQUESTS = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.MULTILINE)
RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)
NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def available() -> bool:
    return shutil.which("wrk") is not None


def parse(output: str) -> dict[str, Any]:
    """wrk's report as loadgen's result (``ok`` False, with the reason, for a bad run)."""
    rate, requests = RATE.search(output), REQUESTS.search(output)
    if rate is None or requests is None:
        return {"ok": False, "error": f"no wrk report in: {output[-300:]!r}"}
    result: dict[str, Any] = {"ok": True, "requests_per_s": float(rate.group(1)),
                              "requests": int(requests.group(1))}
    for percent, value, unit in PERCENTILE.findall(output):
        result[f"p{percent}_ms"] = float(value) * UNITS[unit]
    problems = []
    if errors := SOCKET_ERRORS.search(output):
        counts = dict(zip(("connect", "read", "write", "timeout"),
                          map(int, errors.groups()), strict=True))
        result["socket_errors"] = counts
        if any(counts.values()):
            problems.append("socket errors: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if non_2xx := NON_2XX.search(output):
        result["non_2xx"] = int(non_2xx.group(1))
        problems.append(f"{non_2xx.group(1)} non-2xx answers")
    if not result["requests"]:
        problems.append("no request completed")
    if problems:
        result.update(ok=False, error="wrk: " + "; ".join(problems))
    return result


def check_route(port: int, close: bool, timeout: float = 5) -> str | None:
    """One ``GET /healthz`` by hand: None if it is answered 200 (and, with ``close``, the
    connection then closed by the server), else what is wrong."""
    extra = "Connection: close\r\n" if close else ""
    request = f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}\r\n".encode()
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
                if not close and b"\r\n\r\n" in answer:
                    break
            else:
                raise TimeoutError
        except TimeoutError:
            if close:
                return "the server kept the connection open after Connection: close"
    if not answer.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
        return f"GET {PATH} answered {answer[:60]!r}"
    return None


def run(port: int, server_pid: int, params: dict[str, Any],
        preexec: Callable[[], None] | None, timeout: float) -> dict[str, Any]:
    """Run wrk against ``/healthz`` (see the module doc); ``preexec`` pins it."""
    if not available():
        return {"ok": False, "error": MISSING}
    close = bool(params.get("close", False))
    try:
        problem = check_route(port, close)
    except OSError as exc:
        problem = f"GET {PATH} failed: {exc}"
    if problem:
        return {"ok": False, "error": problem}
    seconds = max(round(float(params.get("seconds", 3))), 1)  # (wrk takes whole seconds)
    command = ["wrk", "-t1", f"-c{int(params.get('connections', 50))}", f"-d{seconds}s",
               "--latency"]
    if close:
        command += ["-H", "Connection: close"]
    command.append(f"http://127.0.0.1:{port}{PATH}")
    # wrk's CPU: the children's usage grows by exactly wrk's once it is waited for (every
    # earlier child, servers and load generators, was waited for before).
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    server0, started = cpu_seconds_of(server_pid), time.monotonic()
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                   preexec_fn=preexec)
    except subprocess.TimeoutExpired as exc:
        return {"ok": False, "error": f"wrk timed out: {exc}"}
    wall = time.monotonic() - started
    server_cpu = cpu_seconds_of(server_pid) - server0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    if completed.returncode != 0:
        return {"ok": False, "error": f"wrk exited {completed.returncode}: "
                                      f"{(completed.stderr or completed.stdout)[-300:]}"}
    result = parse(completed.stdout)
    result.update(wall=wall, client_cpu=client_cpu, server_cpu=server_cpu,
                  client_busy=client_cpu / wall, server_busy=server_cpu / wall,
                  command=" ".join(command))
    return result
