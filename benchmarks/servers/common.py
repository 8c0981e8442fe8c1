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


def fanout_payload(seq: int, size: int) -> str:
    """Event ``seq`` of a fan-out, ``size`` characters, stamped with ``time.monotonic_ns``
    (CLOCK_MONOTONIC: one clock for every process on the machine)."""
    head = f"{seq:08d} {time.monotonic_ns() // 1000:016d} "
    return head + "x" * (size - len(head))


def stream_payload(seq: int, size: int) -> str:
    """Event ``seq`` of a small-event stream, ``size`` characters."""
    head = f"{seq:08d} "
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
