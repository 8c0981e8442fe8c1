"""The benchmark scripts keep working (a smoke run; their numbers are never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
