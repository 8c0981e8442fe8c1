"""The benchmark harness: every stack, every workload, one command.

Run:  .venv/bin/python benchmarks/run.py                 # the full run (about 20 minutes)
      .venv/bin/python benchmarks/run.py --smoke         # a few seconds per stack (CI)
      .venv/bin/python benchmarks/run.py --stacks rawstream,aiohttp --workloads ws_echo
      .venv/bin/python benchmarks/run.py --stacks rawstream --base HEAD~3   # an A/B

Each measurement starts the server in a process of its own (``servers/STACK.py``), pinned to
CPU 0 when the machine has two or more, and runs the load generator (``loadgen.py``) in
another, pinned to CPU 1; the server is stopped (SIGTERM, by its PID) before the next one
starts.  Repeats are interleaved: every stack runs once per repeat, in an order rotated per
repeat, so a slow minute of the machine spreads over all of them.

The workloads (benchmarks/README.md says what each measures): ``sse_fanout_100``,
``sse_fanout_1000``, ``sse_stream``, ``ws_echo``, ``ws_fanout_1000``, ``idle_memory`` and
``churn`` (``loadgen.py``); ``http_keepalive`` and ``http_close`` (``GET /healthz`` driven by
Debian's ``wrk``, see ``wrk.py``: req/s and p50/p99; without wrk installed they FAIL with
the reason, never a skip); ``llm_fixed_rate`` (``loadgen_llm.py``: 1000 SSE streams at 30
tokens/s each, the server's CPU % at that fixed rate, lower wins, and token p50/p99); and
``core`` (``core_bench.py``).  The HTTP workloads run on every stack that serves HTTP (not
websockets, trio_websocket)::

      .venv/bin/python benchmarks/run.py --workloads http_keepalive,http_close,llm_fixed_rate

Results go to ``benchmarks/results/`` (or ``--out``): ``results.json`` (every run),
``RESULTS.md`` (medians and ratios; failures and runs where the load generator was the
bottleneck are marked) and ``results.png`` (one chart per workload), written by
``report.py``.  ``--update-readme`` also writes the headline table into README.md between
its ``bench:`` markers.

``--base REV`` adds one more stack, ``base``: rawstream as it was at the git revision REV
(checked out in a temporary worktree, its own ``servers/rawstream_server.py`` run on its own
sources), measured in the same interleaved run, so ``rawstream vs this`` in each table is
the change's A/B.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wrk
from report import chart, fmt, report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    loadgen: str  # the driver's workload (for wrk: unused)
    metric: str  # the result field compared
    unit: str
    higher_is_better: bool
    params: dict[str, Any]
    smoke: dict[str, Any]
    extra: tuple[tuple[str, str], ...] = ()  # (field, label) shown beside the metric
    #: What drives the load: a load generator script of this folder (run pinned to the load
    #: CPU, its last stdout line the result), or "wrk" (wrk.py runs Debian's wrk).
    driver: str = "loadgen.py"


WORKLOADS = [
    Workload(
        "sse_fanout_100", "SSE fan-out, 100 subscribers", "sse_fanout", "events_per_s",
        "delivered events/s", True,
        {"subscribers": 100, "n": 200, "size": 256, "burst": 50, "seconds": 3},
        {"subscribers": 10, "n": 20, "size": 256, "burst": 10, "seconds": 0.2},
        (("p50_ms", "p50 ms"), ("p99_ms", "p99 ms")),
    ),
    Workload(
        "sse_fanout_1000", "SSE fan-out, 1000 subscribers", "sse_fanout", "events_per_s",
        "delivered events/s", True,
        {"subscribers": 1000, "n": 100, "size": 256, "burst": 50, "seconds": 3},
        {"subscribers": 30, "n": 20, "size": 256, "burst": 10, "seconds": 0.2},
        (("p50_ms", "p50 ms"), ("p99_ms", "p99 ms")),
    ),
    Workload(
        "sse_stream", "SSE stream of small events, 10 x 20 000 x 64 B", "sse_stream",
        "events_per_s", "events/s", True,
        {"clients": 10, "n": 20000, "size": 64},
        {"clients": 2, "n": 300, "size": 64},
        (("ttfb_ms", "TTFB ms"),),
    ),
    Workload(
        "ws_echo", "WebSocket echo, 50 clients, 64 B", "ws_echo", "round_trips_per_s",
        "round trips/s", True,
        {"clients": 50, "size": 64, "seconds": 3},
        {"clients": 5, "size": 64, "seconds": 0.2},
        (("p50_ms", "p50 ms"), ("p99_ms", "p99 ms")),
    ),
    Workload(
        "ws_fanout_1000", "WebSocket fan-out, 1000 subscribers", "ws_fanout", "events_per_s",
        "delivered messages/s", True,
        {"subscribers": 1000, "n": 100, "size": 256, "burst": 50, "seconds": 3},
        {"subscribers": 30, "n": 20, "size": 256, "burst": 10, "seconds": 0.2},
        (("p50_ms", "p50 ms"), ("p99_ms", "p99 ms")),
    ),
    Workload(
        "idle_memory", "Idle memory, 5000 SSE connections", "idle_memory", "rss_per_conn_kib",
        "KiB RSS per connection", False,
        {"connections": 5000, "settle": 1.0},
        {"connections": 50, "settle": 0.1},
    ),
    Workload(
        "churn", "Connection churn (connect, first event, close)", "churn",
        "connections_per_s", "connections/s", True,
        {"concurrency": 50, "seconds": 3},
        {"concurrency": 5, "seconds": 0.2},
    ),
    Workload(
        "http_keepalive", "Keep-alive GET /healthz, 50 connections (wrk)", "", "requests_per_s",
        "requests/s", True,
        {"connections": 50, "seconds": 3},
        {"connections": 5, "seconds": 1},
        (("p50_ms", "p50 ms"), ("p99_ms", "p99 ms")), driver="wrk",
    ),
    Workload(
        "http_close", "GET /healthz, one request per connection, 50 at once (wrk)", "",
        "requests_per_s", "requests/s", True,
        {"connections": 50, "seconds": 3, "close": True},
        {"connections": 5, "seconds": 1, "close": True},
        (("p50_ms", "p50 ms"), ("p99_ms", "p99 ms")), driver="wrk",
    ),
    Workload(
        "llm_fixed_rate", "LLM serving: 1000 SSE streams x 30 tokens/s x 64 B, 5 s",
        "llm_fixed_rate", "server_cpu_pct", "server CPU % at a fixed rate", False,
        {"streams": 1000, "rate": 30, "size": 64, "seconds": 5, "lead": 2},
        {"streams": 20, "rate": 30, "size": 64, "seconds": 1, "lead": 0.2},
        (("p50_ms", "token p50 ms"), ("p99_ms", "token p99 ms"),
         ("rate_kept", "share of the rate kept")), driver="loadgen_llm.py",
    ),
]

SSE = ("sse_fanout_100", "sse_fanout_1000", "sse_stream", "idle_memory", "churn")
WS = ("ws_echo", "ws_fanout_1000")
HTTP = ("http_keepalive", "http_close", "llm_fixed_rate")  # (for the stacks that serve HTTP)


@dataclass(frozen=True)
class Stack:
    name: str
    label: str
    script: str
    workloads: tuple[str, ...]
    framework: bool = True  # a peer framework stack (not rawstream, not the floor)
    root: Path = ROOT  # the checkout its server script and rawstream's sources come from


STACKS = [
    Stack("rawstream", "rawstream", "rawstream_server.py", SSE + WS + HTTP, framework=False),
    Stack("uvicorn", "uvicorn + starlette + sse-starlette", "uvicorn_server.py",
          SSE + WS + HTTP),
    Stack("hypercorn", "hypercorn (trio) + starlette", "hypercorn_trio.py", SSE + WS + HTTP),
    Stack("aiohttp", "aiohttp + aiohttp-sse", "aiohttp_server.py", SSE + WS + HTTP),
    Stack("websockets", "websockets", "websockets_server.py", WS),
    Stack("trio_websocket", "trio-websocket", "trio_websocket_server.py", WS),
    Stack("floor", "floor: plain Trio", "floor_trio.py", SSE + WS + HTTP, framework=False),
]


@dataclass
class Run:
    stack: str
    workload: str
    repeat: int
    result: dict[str, Any] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin(cpu: int | None) -> Any:
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the server did not start listening")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def measure(stack: Stack, workload: Workload, smoke: bool, cpus: tuple[int | None, int | None],
            timeout: float) -> dict[str, Any]:
    """Start the server, run the load generator once, stop the server."""
    if workload.driver == "wrk" and not wrk.available():
        return {"ok": False, "error": wrk.MISSING}  # (a failure, never a skip)
    port = free_port()
    # The server's stderr goes to a file, not a pipe: a chatty server must not block on a
    # full pipe in the middle of a measurement.
    env = None if stack.root == ROOT else {**os.environ, "PYTHONPATH": str(stack.root / "src")}
    with tempfile.TemporaryFile() as errors:
        server = subprocess.Popen(
            [sys.executable, str(stack.root / "benchmarks" / "servers" / stack.script),
             "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=errors,
            preexec_fn=pin(cpus[0]),
            env=env,
        )
        try:
            wait_listening(port, server)
            time.sleep(0.2)
            params = workload.smoke if smoke else workload.params
            if workload.driver == "wrk":
                result = wrk.run(port, server.pid, params, pin(cpus[1]), timeout)
            else:
                result = run_loadgen(workload, port, server.pid, params, cpus[1], timeout)
        except (RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
            result = {"ok": False, "error": str(exc)}
        finally:
            stop(server)
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    if stderr.strip():
        result["server_stderr"] = stderr[-2000:]
    return result




def run_loadgen(workload: Workload, port: int, server_pid: int, params: dict[str, Any],
                cpu: int | None, timeout: float) -> dict[str, Any]:
    """The workload's load generator script, once; its result (the last line it prints)."""
    completed = subprocess.run(
        [sys.executable, str(HERE / workload.driver), workload.loadgen, "--port", str(port),
         "--server-pid", str(server_pid), "--params", json.dumps(params)],
        capture_output=True, text=True, timeout=timeout, preexec_fn=pin(cpu),
    )
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"load generator failed: {completed.stderr[-500:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_core(cpu: int | None, seconds: float) -> dict[str, Any]:
    try:
        completed = subprocess.run(
            [sys.executable, str(HERE / "core_bench.py"), "--seconds", str(seconds)],
            capture_output=True, text=True, timeout=300, preexec_fn=pin(cpu),
        )
    except subprocess.TimeoutExpired as exc:
        return {"ok": False, "error": str(exc), "ops": {}}
    ops = {}
    for line in completed.stdout.splitlines():
        name, value, *_ = line.split()
        ops[name] = float(value.replace(",", ""))
    return {"ok": completed.returncode == 0, "ops": ops}


def update_readme(headline: str, readme: Path) -> None:
    text = readme.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if start not in text or end not in text:
        raise SystemExit(f"{readme} has no {start} ... {end} markers")
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    readme.write_text(f"{before}{start}\n{headline}\n{end}{after}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny loads: checks it all works")
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (smoke: 1)")
    parser.add_argument("--stacks", default=",".join(s.name for s in STACKS))
    parser.add_argument("--workloads", default=",".join([*(w.name for w in WORKLOADS), "core"]))
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per measurement")
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument("--base", metavar="REV",
                        help="also measure rawstream at this git revision (an A/B)")
    args = parser.parse_args()
    args.repeats = args.repeats or (1 if args.smoke else 3)
    stacks = [s for s in STACKS if s.name in args.stacks.split(",")]
    wanted = args.workloads.split(",")
    workloads = [w for w in WORKLOADS if w.name in wanted]
    unknown = set(args.stacks.split(",")) - {s.name for s in STACKS} | (
        set(wanted) - {w.name for w in WORKLOADS} - {"core"})
    if unknown:
        parser.error(f"unknown stacks or workloads: {', '.join(sorted(unknown))}")
    with base_checkout(args.base) as base:
        if base is not None:
            label = f"rawstream at {args.base}"
            stacks.insert(1, Stack("base", label, "rawstream_server.py", SSE + WS + HTTP, False,
                                   base))
        return run_all(args, stacks, workloads, wanted)


@contextlib.contextmanager
def base_checkout(rev: str | None) -> Iterator[Path | None]:
    """A temporary git worktree of ``rev`` (None: no base), removed afterwards."""
    if rev is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="rawstream-base-") as parent:
        tree = Path(parent) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree),
                        rev], check=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(tree)], check=False)


def run_all(args: Any, stacks: list[Stack], workloads: list[Workload], wanted: list[str]) -> int:
    """Measure every stack on every workload, interleaved, then write the reports."""
    cpus: tuple[int | None, int | None] = (None, None)
    available = sorted(os.sched_getaffinity(0))
    if len(available) >= 2:
        cpus = (available[0], available[1])
    machine = {
        "date": datetime.date.today().isoformat(),
        "cpus": len(available),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "pinning": (f"server on CPU {cpus[0]}, load generator on CPU {cpus[1]}"
                    if cpus[0] is not None else "no pinning (one CPU)"),
        "command": "python benchmarks/run.py " + " ".join(sys.argv[1:]),
    }
    runs: list[Run] = []
    args.out.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every measurement: a crash late in a long run loses nothing
        (args.out / "results.json").write_text(json.dumps(
            {"machine": machine, "runs": [r.__dict__ for r in runs]}, indent=1))

    for repeat in range(args.repeats):
        rotation = repeat % max(len(stacks), 1)
        order = stacks[rotation:] + stacks[:rotation]
        for workload in workloads:
            for stack in order:
                if workload.name not in stack.workloads:
                    continue
                result = measure(stack, workload, args.smoke, cpus, args.timeout)
                runs.append(Run(stack.name, workload.name, repeat, result))
                save()
                value = result.get(workload.metric)
                print(f"[{repeat + 1}/{args.repeats}] {workload.name:16} {stack.name:15} "
                      + (fmt(value) + " " + workload.unit if result.get("ok")
                         else "FAIL " + result.get("error", "")), flush=True)
        if "core" in wanted:
            runs.append(Run("core", "core", repeat, run_core(cpus[0], 0.1 if args.smoke else 1)))
            save()
    markdown, headline = report(runs, stacks, workloads, args, machine)
    (args.out / "RESULTS.md").write_text(markdown + "\n")
    chart(runs, stacks, workloads, args.out / "results.png")
    if args.update_readme:
        update_readme(headline, ROOT / "README.md")
    print(markdown)
    failures = [r for r in runs if not r.result.get("ok")]
    return 1 if failures else 0


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
