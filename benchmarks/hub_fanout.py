"""Hub fan-out: one publisher, many SSE subscribers, every event checked.

Run:  .venv/bin/python benchmarks/hub_fanout.py [--subscribers 1000] [--events 2000]
      [--size 256] [--burst 50] [--broker redis://127.0.0.1:6379/0]

Starts a server in its own process on 127.0.0.1 (an App with a hub, ``/events`` from
:func:`~rawstream.hub.sse_channels`, and ``POST /blast?n=&size=&burst=`` that publishes ``n``
events in bursts of ``burst``, yielding to the writers between bursts), opens
``--subscribers`` raw-socket SSE clients in this process, then blasts.  Every client checks
it got every event id, in order, once; a run with a loss or a disconnected subscriber is
reported as a failure, not as a speed.  Prints delivered events/s (events x subscribers /
time from the blast to the last event received), the server's and this process's CPU time,
so a run that measured the client instead of the server shows.  Stops by itself; only the
server it started is signalled, by its PID.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import trio
import trio.lowlevel
from procstat import cpu_seconds_of

# Data events only (not the opening id-only event).  Memory ids: EPOCH-SEQ, consecutive;
# Redis ids: MS-SEQ, increasing.
ID = re.compile(rb"\nid: ([0-9a-f]+)-(\d+)\ndata: ")
HERE = Path(__file__).resolve()


def serve(port_file: str, broker: str | None) -> None:
    """The server process: a hub, its SSE route and the blast publisher."""
    from functools import partial

    from rawstream import App, HTTPError, Request, Response, serve
    from rawstream.hub import open_broker, sse_channels

    hub = open_broker(broker)
    app = App()
    app.service(hub.run)
    sse_channels(app, "/events", hub)

    @app.post("/blast")
    async def blast(request: Request) -> Response:
        try:
            count = int(request.query.get("n", "1000"))
            size = int(request.query.get("size", "256"))
            burst = int(request.query.get("burst", "50"))
        except ValueError:
            raise HTTPError(400, "n, size and burst are integers") from None
        data = "x" * size
        started = time.perf_counter()
        for i in range(count):
            await hub.publish("bench", data)
            if i % burst == burst - 1:  # a real publisher has a pace: this one yields per burst
                await trio.lowlevel.checkpoint()
        return Response.json({"published": count, "seconds": time.perf_counter() - started})

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(partial(serve, app, port=0, handle_signals=True))
            await trio.Path(port_file).write_text(str(server.port))

    trio.run(main)


async def subscriber(
    port: int,
    expected: int,
    results: list[tuple[int, int, float]],
    ready: trio.Semaphore,
    all_done: trio.Event,
    total: int,
    contiguous: bool,
) -> None:
    """A raw-socket SSE client: counts ids, checks they run on one by one (``contiguous``) or
    at least increase, notes the time."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        await sock.connect(("127.0.0.1", port))
        await sock.send(b"GET /events?channel=bench HTTP/1.1\r\nHost: bench\r\n\r\n")
        ready.release()
        previous = None
        received = errors = 0
        tail = b""
        while received < expected:
            chunk = await sock.recv(1 << 18)
            if not chunk:
                errors += 1  # ended early: a disconnected subscriber
                break
            data = tail + chunk
            last_end = 0
            for match in ID.finditer(data):
                number = (int(match.group(1), 16 if contiguous else 10), int(match.group(2)))
                if previous is not None and (
                    number != (previous[0], previous[1] + 1) if contiguous else number <= previous
                ):
                    errors += 1
                previous = number
                received += 1
                last_end = match.end()
            tail = data[max(last_end, len(data) - 64) :]
        results.append((received, errors, time.perf_counter()))
        if len(results) == total:
            all_done.set()
    finally:
        sock.close()


async def run(args: argparse.Namespace, port: int) -> dict[str, float]:
    results: list[tuple[int, int, float]] = []
    ready = trio.Semaphore(0, max_value=args.subscribers)
    all_done = trio.Event()
    async with trio.open_nursery() as nursery:
        for _ in range(args.subscribers):
            nursery.start_soon(
                subscriber,
                port,
                args.events,
                results,
                ready,
                all_done,
                args.subscribers,
                not args.broker or args.broker.startswith("memory"),
            )
        for _ in range(args.subscribers):
            await ready.acquire()
        await trio.sleep(0.5)  # every stream subscribed
        started = time.perf_counter()
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        request = f"POST /blast?n={args.events}&size={args.size}&burst={args.burst} HTTP/1.1\r\n"
        await stream.send_all(
            (request + "Host: bench\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").encode()
        )
        with trio.move_on_after(args.timeout):
            await all_done.wait()
        nursery.cancel_scope.cancel()
    received = sum(r[0] for r in results)
    errors = sum(r[1] for r in results) + (args.subscribers - len(results))
    finished = max((r[2] for r in results), default=time.perf_counter())
    return {"received": received, "errors": errors, "seconds": finished - started}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--broker", help="memory:// (default) or redis://HOST:PORT/DB")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.broker)
        return 0

    limit = args.subscribers + 100
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < limit:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))
    port_file = f"/tmp/rawstream-fanout-{os.getpid()}.port"
    command = [sys.executable, str(HERE), "--serve", port_file]
    if args.broker:
        command += ["--broker", args.broker]
    server = subprocess.Popen(command)
    try:
        deadline = time.monotonic() + 20
        while not (Path(port_file).exists() and Path(port_file).read_text()):
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the benchmark server did not start")
            time.sleep(0.05)
        port = int(Path(port_file).read_text())
        server_cpu, client_cpu = cpu_seconds_of(server.pid), time.process_time()
        result = trio.run(run, args, port)
        server_cpu = cpu_seconds_of(server.pid) - server_cpu
        client_cpu = time.process_time() - client_cpu
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        Path(port_file).unlink(missing_ok=True)
    expected = args.events * args.subscribers
    ok = result["errors"] == 0 and result["received"] == expected
    rate = result["received"] / result["seconds"] if result["seconds"] > 0 else 0.0
    print(
        f"hub_fanout broker={args.broker or 'memory://'} subscribers={args.subscribers} "
        f"events={args.events} size={args.size}: "
        + (f"{rate:,.0f} delivered events/s" if ok else "FAILED (losses or disconnects)")
        + f" received={int(result['received'])}/{expected} errors={int(result['errors'])}"
        f" seconds={result['seconds']:.2f} server_cpu={server_cpu:.2f}s"
        f" client_cpu={client_cpu:.2f}s"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
