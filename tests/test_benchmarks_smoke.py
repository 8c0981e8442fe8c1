"""The benchmark scripts keep working (a smoke run; their numbers are never asserted)."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import missing, require

ROOT = Path(__file__).resolve().parents[1]

#: The harness's workloads driven by loadgen.py (``test_harness_smoke_runs_every_stack``);
#: the HTTP ones (wrk, loadgen_llm.py) have tests of their own below.
LOADGEN_WORKLOADS = (
    "sse_fanout_100,sse_fanout_1000,sse_stream,ws_echo,ws_fanout_1000,idle_memory,churn,core"
)
#: The stacks that serve HTTP (every one but websockets and trio_websocket).
HTTP_STACKS = {"rawstream", "uvicorn", "hypercorn", "aiohttp", "floor"}


def run_benchmark(
    script: str, *args: str, timeout: float = 60, status: int = 0, env: dict[str, str] | None = None
) -> str:
    """Run ``benchmarks/SCRIPT ARGS``; it must exit ``status``.  Returns its stdout."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert result.returncode == status, result.stdout + result.stderr
    return result.stdout


def require_stacks() -> None:
    """The peer stacks' packages and matplotlib (the harness's charts)."""
    for module, reason in (
        ("uvicorn", "the uvicorn stack"),
        ("sse_starlette", "the starlette stacks"),
        ("hypercorn", "the hypercorn stack"),
        ("aiohttp_sse", "the aiohttp stack"),
        ("trio_websocket", "the trio-websocket stack"),
        ("matplotlib", "the charts"),
    ):
        require(module, reason)


def harness_runs(out: Path) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = json.loads((out / "results.json").read_text())["runs"]
    return runs


def test_core_bench_runs() -> None:
    """benchmarks/core_bench.py runs briefly and reports every measurement."""
    output = run_benchmark("core_bench.py", "--seconds", "0.01")
    names = [line.split()[0] for line in output.splitlines()]
    assert names == ["sse_encode", "sse_chunk", "ws_frame", "ws_parse", "http_request", "sse_parse"]


def test_slow_clients_bench_runs() -> None:
    """benchmarks/slow_clients.py runs briefly: the fast client gets every event in order."""
    output = run_benchmark("slow_clients.py", "--seconds", "2", "--slow", "3", timeout=120)
    assert "0 gaps or repeats" in output


def test_compression_bench_runs() -> None:
    """benchmarks/compression_bench.py runs briefly and reports all 15 rows."""
    output = run_benchmark("compression_bench.py", "--events", "50")
    assert len([line for line in output.splitlines() if line.startswith("| ")]) == 16


def test_hub_fanout_bench_runs() -> None:
    """benchmarks/hub_fanout.py runs briefly: every subscriber gets every event, in order."""
    output = run_benchmark(
        "hub_fanout.py", "--subscribers", "5", "--events", "200", "--timeout", "60", timeout=120
    )
    assert "delivered events/s" in output


def test_client_stream_bench_runs() -> None:
    """benchmarks/client_stream.py runs briefly: both clients get every event, in order."""
    output = run_benchmark("client_stream.py", "--events", "2000", "--repeats", "1", timeout=120)
    assert "ratio rawstream.client / httpx-sse" in output


@pytest.mark.timeout(300)
def test_harness_smoke_runs_every_stack(tmp_path: Path) -> None:
    """benchmarks/run.py --smoke: every stack serves every loadgen.py workload it supports,
    and every event arrives once and in order (a failure is a FAIL row and exit status 1)."""
    require_stacks()
    output = run_benchmark(
        "run.py",
        "--smoke",
        "--workloads",
        LOADGEN_WORKLOADS,
        "--out",
        str(tmp_path),
        timeout=300,
    )
    assert " FAIL " not in output  # (the per-run lines; the report's legend names FAIL too)
    report = (tmp_path / "RESULTS.md").read_text()
    for label in ("uvicorn", "hypercorn", "aiohttp", "websockets"):
        assert label in report
    assert (tmp_path / "results.png").stat().st_size > 10_000
    runs = harness_runs(tmp_path)
    assert {run["stack"] for run in runs} >= {"rawstream", "floor", "trio_websocket", "core"}
    assert all(run["result"]["ok"] for run in runs)


@pytest.mark.timeout(180)
def test_harness_smoke_llm_fixed_rate(tmp_path: Path) -> None:
    """llm_fixed_rate in smoke mode (20 streams, 1 s): every HTTP stack streams every token
    of every stream, in order, and its CPU % over the steady window is reported."""
    require_stacks()
    output = run_benchmark(
        "run.py",
        "--smoke",
        "--workloads",
        "llm_fixed_rate",
        "--out",
        str(tmp_path),
        timeout=180,
    )
    assert " FAIL " not in output
    runs = harness_runs(tmp_path)
    assert {run["stack"] for run in runs} == HTTP_STACKS
    for run in runs:
        result = run["result"]
        assert result["ok"], run
        assert result["tokens_delivered"] == result["tokens_expected"] == 20 * 30
        assert result["server_cpu_pct"] >= 0 and result["p99_ms"] >= result["p50_ms"] >= 0


@pytest.mark.timeout(180)
def test_harness_smoke_wrk_workloads(tmp_path: Path) -> None:
    """http_keepalive and http_close in smoke mode (wrk -c5 -d1s): every HTTP stack answers
    GET /healthz with 200, and closes the connection after it when asked to."""
    require_stacks()
    if shutil.which("wrk") is None:
        missing(
            "wrk is not installed (the http_keepalive and http_close workloads); "
            "install it: apt-get install wrk"
        )
    output = run_benchmark(
        "run.py",
        "--smoke",
        "--workloads",
        "http_keepalive,http_close",
        "--out",
        str(tmp_path),
        timeout=180,
    )
    assert " FAIL " not in output
    runs = harness_runs(tmp_path)
    assert {(run["stack"], run["workload"]) for run in runs} == {
        (stack, workload) for stack in HTTP_STACKS for workload in ("http_keepalive", "http_close")
    }
    for run in runs:
        result = run["result"]
        assert result["ok"], run
        assert result["requests"] > 0 and result["p99_ms"] >= result["p50_ms"] > 0


def test_harness_without_wrk_fails_the_wrk_workloads(tmp_path: Path) -> None:
    """Without wrk on the PATH an HTTP workload is a failure with the reason (and exit
    status 1), never a silent skip."""
    env = {**os.environ, "PATH": str(tmp_path)}  # (an empty folder: no wrk there)
    output = run_benchmark(
        "run.py",
        "--smoke",
        "--stacks",
        "floor",
        "--workloads",
        "http_keepalive",
        "--out",
        str(tmp_path / "out"),
        status=1,
        env=env,
    )
    assert "FAIL wrk not installed: apt-get install wrk" in output
    [run] = harness_runs(tmp_path / "out")
    assert run["result"] == {"ok": False, "error": "wrk not installed: apt-get install wrk"}


WRK_REPORT = """Running 1s test @ http://127.0.0.1:8000/healthz
  1 threads and 5 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   810.00us    1.23ms  20.00ms   90.00%
    Req/Sec     4.79k   200.00     5.00k    80.00%
  Latency Distribution
     50%  810.00us
     75%    1.10ms
     90%    2.50ms
     99%    1.20s
  4779 requests in 1.00s, 500.00KB read
{errors}Requests/sec:   4775.12
Transfer/sec:    500.00KB
"""


def test_wrk_report_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmarks/wrk.py reads wrk's report: req/s, the latency percentiles in ms whatever
    wrk's unit, and any socket error or non-2xx answer makes the run not ok."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    wrk = importlib.import_module("wrk")
    good = wrk.parse(WRK_REPORT.format(errors=""))
    assert good["ok"] and good["requests_per_s"] == 4775.12 and good["requests"] == 4779
    assert (good["p50_ms"], good["p90_ms"], good["p99_ms"]) == (0.81, 2.5, 1200.0)
    bad = wrk.parse(
        WRK_REPORT.format(
            errors="  Socket errors: connect 0, read 3, write 0, timeout 0\n"
            "  Non-2xx or 3xx responses: 12\n"
        )
    )
    assert not bad["ok"]
    assert bad["error"] == (
        "wrk: socket errors: connect 0, read 3, write 0, timeout 0; 12 non-2xx answers"
    )
    assert not wrk.parse("unable to connect to 127.0.0.1:1 Connection refused")["ok"]
