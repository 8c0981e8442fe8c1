"""The fixed-rate LLM-serving workload: many SSE streams, each at an LLM answer's pace.

Run by ``benchmarks/run.py`` (a workload of its own module: loadgen.py is long enough); by
hand::

    python benchmarks/loadgen_llm.py llm_fixed_rate --port 8000 --server-pid PID \\
        --params '{"streams": 1000, "rate": 30, "size": 64, "seconds": 5, "lead": 2}'

``streams`` connections, opened at once, each ``GET /sse/tokens?n=N&size=S&rate=R&start_us=T``
with ``N = rate x seconds`` and one start ``T`` for all, ``lead`` seconds after they are
opened (time for the server to accept them all): the server sends token ``i`` of every
stream when it is due, ``T + i / R``, as a batched decoder gives every answer of its batch
a token at each step, stamped with that due time (``servers/common.py``'s
``token_payload``: CLOCK_MONOTONIC microseconds, this process's clock too).  A token's
latency is its receive time minus its due time, so a server that falls behind its schedule
(or had not accepted a stream by ``T``) counts as well as a slow delivery.

At a fixed rate every stack sends the same tokens; what differs is what it costs: the
metric is the server's CPU over the *steady window*, from the moment every stream has its
first token to the moment the first stream has its last (all streams running), in percent
of that window's wall time: lower wins.  The latencies reported are those of the tokens
received in the window, ``tokens_per_s`` the rate received in it.  ``rate_kept`` is the
schedule's length (token 0 to token ``N - 1``) over the time from its start to the last
token's arrival: below 1, the server fell behind, and its CPU % is its saturation.  The load
generator's own CPU over the window is reported too, so a run where it was the bottleneck
is flagged like any other.  Not ok (``ok`` False, never a number): a token missing,
repeated or out of order, a stream ending early, or streams that never all ran at once for
``min_steady`` seconds (the setup took the streams' length).
"""

from __future__ import annotations

import re
import sys
import time
from typing import Any

import loadgen
from loadgen import (
    BenchError,
    Conn,
    Loop,
    connect,
    expected_seqs,
    now_us,
    own_cpu_seconds,
    percentile,
    sse_request,
    whole_payloads,
)
from procstat import cpu_seconds_of

#: A token's sequence number and due time (``SEQ DUE_US x...``).
TOKEN = re.compile(rb"(\d{8}) (\d{16}) x")


def fixed_rate(port: int, server_pid: int, params: dict[str, Any]) -> dict[str, Any]:
    """``streams`` SSE streams of ``rate`` tokens/s of ``size`` bytes for ``seconds``."""
    streams, size = int(params.get("streams", 1000)), int(params.get("size", 64))
    rate, seconds = float(params.get("rate", 30)), float(params.get("seconds", 5))
    min_steady = float(params.get("min_steady", seconds / 2))
    n = max(round(rate * seconds), 2)
    loop = Loop()
    expected = expected_seqs(n)
    start_us = now_us() + round(float(params.get("lead", 1)) * 1e6)
    request = sse_request(f"/sse/tokens?n={n}&size={size}&rate={rate:g}&start_us={start_us}", port)
    started, finished = [0], [0]
    steady = [False]
    window: dict[str, float] = {}  # "start"/"end": monotonic, client and server CPU seconds
    steady_latencies: list[float] = []  # microseconds
    all_latencies: list[float] = []
    in_window = [0]  # tokens received in the steady window
    last_us = [0]  # when the last token arrived

    def mark(edge: str) -> None:
        window[edge] = time.monotonic()
        window[edge + "_client"] = own_cpu_seconds()
        window[edge + "_server"] = cpu_seconds_of(server_pid)

    def on_event(conn: Conn, events: int) -> None:
        try:
            view = loop.read(conn)
        except EOFError:
            raise BenchError(f"a stream ended after {conn.next} of {n} tokens") from None
        if not view:
            return
        payloads = whole_payloads(loop, conn, view)
        if payloads is None:
            return
        found = TOKEN.findall(payloads)
        if not found:
            return
        received = last_us[0] = now_us()
        start = conn.next
        if [seq for seq, _ in found] != expected[start : start + len(found)]:
            raise BenchError(f"tokens out of order: expected {start}.., got {found[:2]!r}..")
        conn.next = start + len(found)
        latencies = [received - int(due) for _, due in found]
        all_latencies.extend(latencies)
        if steady[0]:
            steady_latencies.extend(latencies)
            in_window[0] += len(found)
        if start == 0:
            started[0] += 1
            if started[0] == streams:
                if finished[0]:
                    raise BenchError(
                        "the streams never all ran at once: the first ended before the last "
                        f"began ({streams} streams of {seconds:g} s)"
                    )
                mark("start")
                steady[0] = True
        if conn.next == n:
            finished[0] += 1
            loop.remove(conn)
            if steady[0]:
                steady[0] = False
                mark("end")

    opened = time.monotonic()
    for _ in range(streams):
        conn = Conn(connect(port))
        conn.sock.sendall(request)
        loop.add(conn)
    deadline = opened + seconds + float(params.get("setup_timeout", 120))
    loop.run_until(lambda: finished[0] == streams, deadline, on_event)
    loop.close()
    wall = window["end"] - window["start"]
    if wall < min_steady:
        raise BenchError(
            f"all {streams} streams ran at once for {wall:.2f} s only (under {min_steady:g} s):"
            f" the last one's first token came {window['start'] - opened:.2f} s after they were"
            " opened"
        )
    delivered = len(all_latencies)
    if delivered != streams * n:  # (each stream was checked in order, up to its last token)
        raise BenchError(f"{delivered} tokens delivered of {streams * n}")
    server_cpu = window["end_server"] - window["start_server"]
    return {
        "server_cpu_pct": 100 * server_cpu / wall,
        "p50_ms": percentile(steady_latencies, 0.50) / 1000,
        "p99_ms": percentile(steady_latencies, 0.99) / 1000,
        "max_ms": max(steady_latencies, default=0) / 1000,
        "p99_all_ms": percentile(all_latencies, 0.99) / 1000,
        "tokens_per_s": in_window[0] / wall,
        # The schedule's length over the time the last token took to arrive: below 1, the
        # server did not keep the rate (its CPU % is then a saturation figure).
        "rate_kept": (n - 1) / rate / max((last_us[0] - start_us) / 1e6, 1e-6),
        "tokens_expected": streams * n,
        "tokens_delivered": delivered,
        "setup_s": window["start"] - opened,  # (lead included)
        "wall": wall,
        "client_cpu": window["end_client"] - window["start_client"],
        "server_cpu": server_cpu,
    }


WORKLOADS: loadgen.Workloads = {"llm_fixed_rate": fixed_rate}

if __name__ == "__main__":
    sys.exit(loadgen.main(workloads=WORKLOADS))
