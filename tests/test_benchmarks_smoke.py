"""The benchmark scripts keep working (a smoke run; their numbers are never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_core_bench_runs() -> None:
    """benchmarks/core_bench.py runs briefly and reports every measurement."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "core_bench.py"), "--seconds", "0.01"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == ["sse_encode", "sse_chunk", "ws_frame", "ws_parse", "http_request"]


def test_slow_clients_bench_runs() -> None:
    """benchmarks/slow_clients.py runs briefly: the fast client gets every event in order."""
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "slow_clients.py"),
            "--seconds",
            "2",
            "--slow",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 gaps or repeats" in result.stdout


def test_compression_bench_runs() -> None:
    """benchmarks/compression_bench.py runs briefly and reports all 15 rows."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "compression_bench.py"), "--events", "50"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert len([line for line in result.stdout.splitlines() if line.startswith("| ")]) == 16


def test_hub_fanout_bench_runs() -> None:
    """benchmarks/hub_fanout.py runs briefly: every subscriber gets every event, in order."""
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "hub_fanout.py"),
            "--subscribers",
            "5",
            "--events",
            "200",
            "--timeout",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "delivered events/s" in result.stdout
