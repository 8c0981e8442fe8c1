"""What every benchmark server shares: its command line and the events' payloads.

Every server in this folder serves the same URLs (see benchmarks/README.md, "The contract"),
so one load generator measures them all.  Payloads carry their sequence number (and, for
fan-out, the publish time) so the load generator checks order and measures latency without
parsing the protocol.
"""

from __future__ import annotations

import argparse
import resource
import time

#: Fan-out payloads start with ``SEQ(8 digits) PUBLISHED_US(16 digits) `` then padding.
FANOUT_PREFIX = 26
#: Stream payloads start with ``SEQ(8 digits) `` then padding.
STREAM_PREFIX = 9
#: Token payloads (``/sse/tokens``) start with ``SEQ(8 digits) SCHEDULED_US(16 digits) ``,
#: the fan-out layout, so the load generator reads both with one expression.
TOKEN_PREFIX = FANOUT_PREFIX


def fanout_payload(seq: int, size: int) -> str:
    """Event ``seq`` of a fan-out, ``size`` characters, stamped with ``time.monotonic_ns``
    (CLOCK_MONOTONIC: one clock for every process on the machine)."""
    head = f"{seq:08d} {time.monotonic_ns() // 1000:016d} "
    return head + "x" * (size - len(head))


def stream_payload(seq: int, size: int) -> str:
    """Event ``seq`` of a small-event stream, ``size`` characters."""
    head = f"{seq:08d} "
    return head + "x" * (size - len(head))


def now_us() -> int:
    """``time.monotonic_ns`` in microseconds: CLOCK_MONOTONIC, the load generator's clock."""
    return time.monotonic_ns() // 1000


def token_payload(seq: int, size: int, start_us: int, rate: float) -> str:
    """Token ``seq`` of a fixed-rate stream that starts at ``start_us`` (:func:`now_us`),
    ``size`` characters, stamped with the time it is due: ``start_us + seq / rate``.  The
    load generator's token latency (receive time minus this) then counts a server that
    falls behind its schedule as well as the delivery."""
    head = f"{seq:08d} {start_us + round(seq * 1_000_000 / rate):016d} "
    return head + "x" * (size - len(head))


def parse_args(description: str) -> argparse.Namespace:
    """``--port``: where to listen on 127.0.0.1.  Also lifts the open-files limit to its
    hard maximum (the idle-memory workload holds thousands of connections)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return args


def publish_params(query: dict[str, str]) -> tuple[int, int, int]:
    """``n``, ``size`` and ``burst`` of a publish request (defaults 100, 256, 50)."""
    n = int(query.get("n", "100"))
    size = max(int(query.get("size", "256")), FANOUT_PREFIX)
    burst = max(int(query.get("burst", "50")), 1)
    return n, size, burst


def stream_params(query: dict[str, str]) -> tuple[int, int]:
    """``n`` and ``size`` of a stream request (defaults 20000, 64)."""
    return int(query.get("n", "20000")), max(int(query.get("size", "64")), STREAM_PREFIX)


def ws_publish_params(message: str | bytes) -> tuple[int, int, int]:
    """``n``, ``size`` and ``burst`` of a ``/ws/publish`` message ``"N S B"``."""
    text = message.decode() if isinstance(message, bytes) else message
    return publish_params(dict(zip(("n", "size", "burst"), text.split()[:3], strict=False)))


def token_params(query: dict[str, str]) -> tuple[int, int, float, int, float]:
    """``n``, ``size``, ``rate`` (tokens/s, defaults 150, 64, 30) and ``start_us`` of a
    ``/sse/tokens`` request, and how many seconds from now that start is (below 0: past).

    ``start_us`` (a :func:`now_us` time; default: now) is when token 0 is due, token ``i``
    ``i / rate`` seconds later: the load generator gives every stream the same start, as a
    batched decoder gives every answer in its batch a token at each step.  A server sleeps
    until ``its_clock() + delay + i / rate``."""
    n = int(query.get("n", "150"))
    size = max(int(query.get("size", "64")), TOKEN_PREFIX)
    rate = max(float(query.get("rate", "30")), 0.001)
    now = now_us()
    start_us = int(query.get("start_us", now))
    return n, size, rate, start_us, (start_us - now) / 1e6
