"""The benchmark scripts keep working (a smoke run; their numbers are never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import require

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(script: str, *args: str, timeout: float = 60) -> str:
    """Run ``benchmarks/SCRIPT ARGS``; it must exit 0.  Returns its stdout."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


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


def test_harness_smoke_runs_every_stack(tmp_path: Path) -> None:
    """benchmarks/run.py --smoke: every stack serves every workload it supports, and every
    event arrives once and in order (a failure is a FAIL row and exit status 1)."""
    for module, reason in (
        ("uvicorn", "the uvicorn stack"),
        ("sse_starlette", "the starlette stacks"),
        ("hypercorn", "the hypercorn stack"),
        ("aiohttp_sse", "the aiohttp stack"),
        ("trio_websocket", "the trio-websocket stack"),
        ("matplotlib", "the charts"),
    ):
        require(module, reason)
    output = run_benchmark("run.py", "--smoke", "--out", str(tmp_path), timeout=300)
    assert " FAIL " not in output  # (the per-run lines; the report's legend names FAIL too)
    report = (tmp_path / "RESULTS.md").read_text()
    for label in ("uvicorn", "hypercorn", "aiohttp", "websockets"):
        assert label in report
    assert (tmp_path / "results.png").stat().st_size > 10_000
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert {run["stack"] for run in runs} >= {"rawstream", "floor", "trio_websocket", "core"}
    assert all(run["result"]["ok"] for run in runs)
