"""rawstream's SSE client against a peer client, reading the same stream from the same server.

Run:  .venv/bin/python benchmarks/client_stream.py [--events 200000] [--size 64] [--repeats 3]

Starts the demo in its own process on 127.0.0.1 and reads ``/stream?n=N&size=S`` (N events of S
bytes, as fast as the reader takes them: small events, like LLM tokens) with
``rawstream.client.connect_sse`` and with httpx + httpx-sse, interleaved, ``--repeats`` times
each.  Every run checks it got every id, in order, once.  Prints the median events/s of each
client, their ratio, and this process's CPU time per run (the server is the same for both, so
the difference is the client's work).  Stops by itself; only the server it started is
signalled, by its PID.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import trio
from httpx_sse import aconnect_sse

sys.path.insert(0, str(Path(__file__).parent))
from slow_clients import start_server

from rawstream.client import connect_sse

Reader = Callable[[str], Awaitable[int]]


async def read_with_rawstream(url: str) -> int:
    """Read the stream with rawstream.client; return how many events arrived in order."""
    expected = 0
    async with connect_sse(url) as response:
        async for event in response.events():
            if event.id != str(expected):
                raise SystemExit(f"rawstream.client: got id {event.id}, expected {expected}")
            expected += 1
    return expected


async def read_with_httpx_sse(url: str) -> int:
    """Read the stream with httpx + httpx-sse; return how many events arrived in order."""
    expected = 0
    async with (
        httpx.AsyncClient(timeout=None) as client,
        aconnect_sse(client, "GET", url) as source,
    ):
        async for event in source.aiter_sse():
            if event.id != str(expected):
                raise SystemExit(f"httpx-sse: got id {event.id}, expected {expected}")
            expected += 1
    return expected


async def run(port: int, events: int, size: int, repeats: int) -> None:
    url = f"http://127.0.0.1:{port}/stream?n={events}&size={size}"
    readers: dict[str, Reader] = {
        "rawstream.client": read_with_rawstream,
        "httpx-sse": read_with_httpx_sse,
    }
    rates: dict[str, list[float]] = {name: [] for name in readers}
    cpu: dict[str, list[float]] = {name: [] for name in readers}
    for _ in range(repeats):
        for name, reader in readers.items():  # interleaved, so drift hits both alike
            started, cpu_started = time.perf_counter(), time.process_time()
            got = await reader(url)
            elapsed = time.perf_counter() - started
            if got != events:
                raise SystemExit(f"{name}: {got} of {events} events: a failure, not a speed")
            rates[name].append(events / elapsed)
            cpu[name].append(time.process_time() - cpu_started)
    print(f"{events} events of {size} bytes, median of {repeats} runs each:")
    for name in readers:
        print(
            f"  {name:17s} {statistics.median(rates[name]):>10,.0f} events/s"
            f"  (client CPU {statistics.median(cpu[name]):.2f} s a run)"
        )
    ratio = statistics.median(rates["rawstream.client"]) / statistics.median(rates["httpx-sse"])
    print(f"  ratio rawstream.client / httpx-sse: {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        server, port = start_server(os.path.join(directory, "server.log"))
        try:
            trio.run(run, port, args.events, args.size, args.repeats)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=15)


if __name__ == "__main__":
    main()
