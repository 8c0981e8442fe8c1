"""Slow clients cannot grow the server's memory, nor slow a fast client down.

Run:  .venv/bin/python benchmarks/slow_clients.py [--seconds 20] [--slow 50] [--size 256]

Starts ``rawstream demo`` in its own process on 127.0.0.1, opens ``--slow`` clients that ask
for an endless ``/stream`` and never read, and one fast client that reads the same endless
stream as fast as it can and checks every event id arrives, in order, once.  Every second it
samples the server's RSS.  Expected: RSS rises while the slow clients' buffers fill (kernel
socket buffers, then each connection's outbox, bounded by ``Config.outbox_high_bytes``), then
stays flat; the fast client keeps receiving every event.  Everything stops by itself after
``--seconds``; only the server this script started is signalled, by its PID.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio
from procstat import rss_bytes_of

ID = re.compile(rb"\nid: (\d+)\n")


def start_server(log_path: str) -> tuple[subprocess.Popen[str], int]:
    """Start the demo on a free port; learn the port from its start-up log line."""
    log = open(log_path, "w+")  # noqa: SIM115 (the server writes it while we run)
    process = subprocess.Popen(
        [sys.executable, "-m", "rawstream", "demo", "--port", "0"],
        stderr=log,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", Path(log_path).read_text())
        if found:
            return process, int(found.group(1))
        time.sleep(0.05)
    process.kill()
    raise SystemExit("the demo server did not start")


async def slow_client(port: int, size: int, opened: list[trio.socket.SocketType]) -> None:
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", port))
    await sock.send(f"GET /stream?n=0&size={size} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    opened.append(sock)  # never read: held open until the end


async def fast_client(port: int, size: int, result: dict[str, int]) -> None:
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        await sock.connect(("127.0.0.1", port))
        await sock.send(f"GET /stream?n=0&size={size} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        expected, tail = 0, b""
        while True:
            data = await sock.recv(1 << 20)
            if not data:
                return
            chunk = tail + data
            last_end = 0
            for match in ID.finditer(chunk):
                if int(match.group(1)) != expected:
                    result["out_of_order"] += 1
                    expected = int(match.group(1))
                expected += 1
                last_end = match.end()
            tail = chunk[max(last_end, len(chunk) - 64) :]
            result["events"] = expected


async def run(seconds: float, slow: int, size: int) -> int:
    process, port = start_server(os.path.join(tempfile.mkdtemp(), "server.log"))
    samples: list[tuple[float, float]] = []
    result = {"events": 0, "out_of_order": 0}
    held: list[trio.socket.SocketType] = []
    try:
        rss_start = rss_bytes_of(process.pid) / 2**20
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for _ in range(slow):
                nursery.start_soon(slow_client, port, size, held)
            nursery.start_soon(fast_client, port, size, result)
            for second in range(1, int(seconds) + 1):
                await trio.sleep_until(start + second)
                samples.append((second, rss_bytes_of(process.pid) / 2**20))
            nursery.cancel_scope.cancel()
    finally:
        for sock in held:
            sock.close()
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
    print(
        f"server RSS at start: {rss_start:.1f} MiB; {slow} clients that never read, 1 fast client"
    )
    print("| second | server RSS (MiB) |\n|---:|---:|")
    for second, rss in samples:
        print(f"| {second:.0f} | {rss:.1f} |")
    half = samples[len(samples) // 2][1] if samples else 0.0
    print(f"RSS growth over the second half: {samples[-1][1] - half:+.1f} MiB")
    rate = result["events"] / seconds
    print(
        f"fast client: {result['events']} events ({rate:,.0f}/s), "
        f"{result['out_of_order']} gaps or repeats"
    )
    print(f"server exit code after SIGTERM: {code}")
    return 0 if result["out_of_order"] == 0 and result["events"] > 0 and code == 0 else 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--slow", type=int, default=50, help="clients that never read")
    parser.add_argument("--size", type=int, default=256, help="bytes of data per event")
    args = parser.parse_args()
    raise SystemExit(trio.run(run, args.seconds, args.slow, args.size))


if __name__ == "__main__":
    main()
