"""The load generator: raw non-blocking sockets on one epoll loop, minimal parsing.

Run by ``benchmarks/run.py`` (one process per measurement, pinned to its own core); by hand::

    python benchmarks/loadgen.py sse_fanout --port 8000 --server-pid PID \\
        --params '{"subscribers": 100, "seconds": 3}'

prints one JSON object: ``ok`` (False with an ``error`` when anything was lost, repeated,
out of order or refused: a failed run is never reported as a speed), the workload's metrics,
the wall time measured and the CPU time this process and the server spent in it.  A load
generator busy for more than 90% of the wall time was measuring itself, not the server: the
harness flags such a run (and one where the server was not busy while this was).

It does not parse HTTP or WebSocket beyond a response's status line: every payload carries
its sequence number (and, for fan-out, its publish time) in digits (see
``servers/common.py``), so one regular expression over the raw bytes finds the events
whatever the framing (chunked or not, CRLF or LF, WebSocket headers, rawstream's JSON
envelope).  Bytes are received into one shared buffer; only the few bytes of a payload
split across two reads are kept per connection.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import errno
import json
import os
import re
import resource
import select
import socket
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from procstat import cpu_seconds_of, rss_bytes_of

#: A fan-out payload's sequence number (``SEQ PUBLISHED_US x...``), and its publish time.
FANOUT_SEQ = re.compile(rb"(\d{8}) \d{16} x")
FANOUT_TIME = re.compile(rb"\d{8} (\d{16}) x")
#: A stream payload's sequence number (``SEQ x...``).
STREAM_SEQ = re.compile(rb"(\d{8}) x")
#: Where a payload's digits end: what follows the last one may be a payload cut short.
PAYLOAD_END = b" x"

RECV_SIZE = 1 << 20
WS_KEY = base64.b64encode(b"rawstream-bench!").decode()
WAVE = 250  # connections opened at a time before waiting for them to be ready


class BenchError(Exception):
    """The run failed (a loss, a repeat, a refusal, a timeout): reported, never a speed."""


def now_us() -> int:
    return time.monotonic_ns() // 1000


def expected_seqs(count: int) -> list[bytes]:
    return [b"%08d" % i for i in range(count)]


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# -- requests ---------------------------------------------------------------------------------


def http_request(method: str, path: str, port: int, extra: str = "") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}"
        f"User-Agent: rawstream-loadgen\r\n\r\n"
    ).encode()


def sse_request(path: str, port: int) -> bytes:
    return http_request("GET", path, port, "Accept: text/event-stream\r\n")


def ws_request(path: str, port: int) -> bytes:
    return http_request(
        "GET",
        path,
        port,
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\n"
        "Sec-WebSocket-Version: 13\r\n",
    )


def ws_client_frame(payload: bytes, mask: bytes = b"\x37\xfa\x21\x3d") -> bytes:
    """One masked text frame, as a client must send it."""
    length = len(payload)
    if length < 126:
        head = bytes([0x81, 0x80 | length])
    elif length < 65536:
        head = bytes([0x81, 0x80 | 126]) + length.to_bytes(2, "big")
    else:
        head = bytes([0x81, 0x80 | 127]) + length.to_bytes(8, "big")
    repeated = (mask * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        length, "big"
    )
    return head + mask + masked


def connect(port: int, blocking: bool = True) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if blocking:
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
    else:
        sock.setblocking(False)
        error = sock.connect_ex(("127.0.0.1", port))
        if error not in (0, errno.EINPROGRESS):
            sock.close()
            raise BenchError(f"connect failed: {os.strerror(error)}")
    return sock


# -- connections ------------------------------------------------------------------------------


@dataclass(eq=False)
class Conn:
    """One client connection: its socket and what it has seen."""

    sock: socket.socket
    head: bytes = b""  # the response head until it is complete
    body: bytes = b""  # before ready: what followed the head
    ready: bool = False
    tail: bytes = b""  # after ready: the start of a payload cut short by a read
    next: int = 0  # the next sequence number expected
    sample: bool = False  # measure latency on this connection
    started: float = 0.0
    first_byte: float = 0.0
    done_at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fd(self) -> int:
        return self.sock.fileno()


class Loop:
    """An epoll loop over connections (level-triggered)."""

    def __init__(self) -> None:
        self.epoll = select.epoll()
        self.conns: dict[int, Conn] = {}
        self.buffer = bytearray(RECV_SIZE)
        self.view = memoryview(self.buffer)

    def add(self, conn: Conn, events: int = select.EPOLLIN) -> None:
        self.conns[conn.fd] = conn
        self.epoll.register(conn.fd, events)

    def modify(self, conn: Conn, events: int) -> None:
        self.epoll.modify(conn.fd, events)

    def remove(self, conn: Conn) -> None:
        self.conns.pop(conn.fd, None)
        with contextlib.suppress(OSError, ValueError):
            self.epoll.unregister(conn.fd)
        conn.sock.close()

    def close(self) -> None:
        for conn in list(self.conns.values()):
            self.remove(conn)
        self.epoll.close()

    def read(self, conn: Conn) -> memoryview:
        """Receive what ``conn`` has, after its kept tail; b"" at EOF."""
        tail = conn.tail
        start = len(tail)
        if start:
            self.buffer[:start] = tail
        try:
            count = conn.sock.recv_into(self.view[start:])
        except BlockingIOError:
            return self.view[:0]
        except ConnectionError as exc:
            raise BenchError(f"connection failed: {exc}") from exc
        if not count:
            raise EOFError
        return self.view[: start + count]

    def run_until(self, done: Callable[[], bool], deadline: float, on_event: Callable) -> None:
        """Dispatch readiness to ``on_event(conn, events)`` until ``done()`` or the deadline."""
        poll = self.epoll.poll
        conns = self.conns
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError("timed out")
            for fd, events in poll(min(remaining, 0.1), 4096):
                conn = conns.get(fd)
                if conn is not None:
                    on_event(conn, events)


def payloads_end(loop: Loop, view: memoryview) -> int:
    """Where the last complete payload prefix in ``view`` ends (below 2: none)."""
    if view.obj is loop.buffer:
        return loop.buffer.rfind(PAYLOAD_END, 0, len(view)) + 2
    return bytes(view).rfind(PAYLOAD_END) + 2


def whole_payloads(loop: Loop, conn: Conn, view: memoryview) -> memoryview | None:
    """The whole payloads in a stream's new bytes (its ``200`` head taken first); what
    follows the last one is kept in ``conn.tail``.  None: nothing whole yet."""
    if not conn.ready:
        if not take_head(conn, bytes(view), b"HTTP/1.1 200"):
            return None
        conn.ready = True
        view = memoryview(conn.body)
        conn.body = b""
    cut = payloads_end(loop, view)
    if cut < 2:
        conn.tail = bytes(view)
        return None
    conn.tail = bytes(view[cut:])
    return view[:cut]


def take_head(conn: Conn, data: bytes, want: bytes) -> bool:
    """Accumulate the response head; True once it is complete (its status checked)."""
    conn.head += data
    end = conn.head.find(b"\r\n\r\n")
    if end < 0:
        if len(conn.head) > 65536:
            raise BenchError("response head too long")
        return False
    head, conn.body = conn.head[: end + 4], conn.head[end + 4 :]
    conn.head = head
    if not head.startswith(want):
        raise BenchError(f"unexpected response: {head[:120]!r}")
    return True


def ready_signal(kind: str, body: bytes) -> bool:
    """The server's first event (SSE) or first message (WebSocket) has arrived."""
    if kind == "ws":
        return b"ready" in body
    return b"\n\n" in body or b"\r\n\r\n" in body or b"\r\r" in body


def open_streams(
    loop: Loop, port: int, kind: str, path: str, count: int, deadline: float
) -> list[Conn]:
    """Open ``count`` subscribers in waves, each wave ready (registered) before the next."""
    request = ws_request(path, port) if kind == "ws" else sse_request(path, port)
    want = b"HTTP/1.1 101" if kind == "ws" else b"HTTP/1.1 200"
    conns: list[Conn] = []
    pending: set[Conn] = set()

    def on_event(conn: Conn, events: int) -> None:
        try:
            data = bytes(loop.read(conn))
        except EOFError:
            raise BenchError(f"server closed a {path} subscriber before it was ready") from None
        if not data:
            return
        if conn.head.endswith(b"\r\n\r\n"):
            conn.body += data
        elif not take_head(conn, data, want):
            return
        if ready_signal(kind, conn.body):
            conn.ready = True
            conn.body = b""
            pending.discard(conn)

    while len(conns) < count:
        for _ in range(min(WAVE, count - len(conns))):
            conn = Conn(connect(port))
            conn.sock.sendall(request)
            loop.add(conn)
            conns.append(conn)
            pending.add(conn)
        loop.run_until(lambda: not pending, deadline, on_event)
    return conns


# -- workloads --------------------------------------------------------------------------------


class Publisher:
    """Triggers a publish: ``POST /publish`` (SSE) or a message on ``/ws/publish``."""

    def __init__(self, loop: Loop, port: int, kind: str, deadline: float) -> None:
        self.loop, self.port, self.kind = loop, port, kind
        self.reply: dict[str, Any] | None = None
        self.conn: Conn | None = None
        if kind == "ws":
            self.conn = open_websocket(loop, port, "/ws/publish", deadline)

    def trigger(self, n: int, size: int, burst: int) -> None:
        self.reply = None
        if self.kind == "ws":
            assert self.conn is not None
            self.conn.body = b""
            self.conn.sock.sendall(ws_client_frame(f"{n} {size} {burst}".encode()))
        else:
            if self.conn is not None:
                self.loop.remove(self.conn)
            self.conn = Conn(connect(self.port))
            path = f"/publish?n={n}&size={size}&burst={burst}"
            self.conn.sock.sendall(http_request("POST", path, self.port, "Content-Length: 0\r\n"))
            self.loop.add(self.conn)

    def on_event(self, conn: Conn) -> None:
        try:
            data = bytes(self.loop.read(conn))
        except EOFError:
            if self.reply is None:
                raise BenchError("the publish request got no answer") from None
            self.loop.remove(conn)
            self.conn = None
            return
        if self.kind == "http" and not conn.head.endswith(b"\r\n\r\n"):
            if not take_head(conn, data, b"HTTP/1.1 200"):
                return
            data = b""
        conn.body += data
        start, end = conn.body.find(b"{"), conn.body.rfind(b"}")
        if 0 <= start < end:
            try:
                self.reply = json.loads(conn.body[start : end + 1])
            except ValueError:
                return  # not all there yet


def open_websocket(loop: Loop, port: int, path: str, deadline: float) -> Conn:
    """One WebSocket with no ready message to wait for (the publisher, an echo client)."""
    conn = Conn(connect(port))
    conn.sock.sendall(ws_request(path, port))
    loop.add(conn)

    def on_event(c: Conn, events: int) -> None:
        data = bytes(loop.read(c))
        if data and take_head(c, data, b"HTTP/1.1 101"):
            c.ready = True

    loop.run_until(lambda: conn.ready, deadline, on_event)
    return conn


def fanout(port: int, server_pid: int, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """One publisher, many subscribers: rounds of ``n`` events until ``seconds`` have passed;
    each round ends when every subscriber has every event of it, once, in order.

    Every round numbers its events from 0, so the sampled subscribers also check each event
    was published in this round (its publish time), and after the last round any event
    still arriving is a failure (a repeat).
    """
    subscribers = int(params.get("subscribers", 100))
    n, size, burst = (
        int(params.get("n", 200)),
        int(params.get("size", 256)),
        int(params.get("burst", 50)),
    )
    seconds = float(params.get("seconds", 3))
    sample_every = int(params.get("latency_sample_every", 10))
    loop = Loop()
    setup_deadline = time.monotonic() + float(params.get("setup_timeout", 120))
    path = "/ws/fanout" if kind == "ws" else "/sse/fanout"
    subs = open_streams(loop, port, kind, path, subscribers, setup_deadline)
    for index, sub in enumerate(subs):
        sub.sample = index % sample_every == 0
    publisher = Publisher(loop, port, "ws" if kind == "ws" else "http", setup_deadline)
    expected = expected_seqs(n)
    latencies: list[int] = []
    unfinished = [0]
    round_start = [0]  # now_us() when the round was triggered

    def on_event(conn: Conn, events: int) -> None:
        if conn is publisher.conn:
            publisher.on_event(conn)
            return
        try:
            view = loop.read(conn)
        except EOFError:
            raise BenchError(f"the server closed a subscriber after {conn.next} events") from None
        if not view:
            return
        cut = payloads_end(loop, view)
        if cut < 2:
            conn.tail = bytes(view)
            return
        found = FANOUT_SEQ.findall(view[:cut])
        if found:
            start = conn.next
            if found != expected[start : start + len(found)]:
                raise BenchError(
                    f"subscriber out of order: expected {start}.., got {found[:3]!r}.."
                )
            conn.next = start + len(found)
            if conn.next == n:
                unfinished[0] -= 1
            if conn.sample:
                received = now_us()
                published = [int(t) for t in FANOUT_TIME.findall(view[:cut])]
                if published and min(published) < round_start[0]:
                    raise BenchError("a subscriber got an event of an earlier round again")
                latencies.extend(received - t for t in published)
        conn.tail = bytes(view[cut:])

    client0, server0, started = own_cpu_seconds(), cpu_seconds_of(server_pid), time.monotonic()
    rounds = 0
    while True:
        for sub in subs:
            sub.next = 0
        unfinished[0] = len(subs)
        round_start[0] = now_us()
        publisher.trigger(n, size, burst)
        round_deadline = time.monotonic() + float(params.get("round_timeout", 120))
        loop.run_until(
            lambda: unfinished[0] == 0 and publisher.reply is not None, round_deadline, on_event
        )
        reply = publisher.reply or {}
        if reply.get("subscribers") != len(subs):
            raise BenchError(f"the server counted {reply.get('subscribers')} subscribers")
        rounds += 1
        if time.monotonic() - started >= seconds:
            break
    wall = time.monotonic() - started
    client_cpu, server_cpu = own_cpu_seconds() - client0, cpu_seconds_of(server_pid) - server0
    # Untimed: anything still arriving now is an event beyond n (on_event raises).
    quiet_until = time.monotonic() + float(params.get("quiet_check", 0.2))
    loop.run_until(lambda: time.monotonic() >= quiet_until, quiet_until + 1, on_event)
    loop.close()
    delivered = rounds * n * len(subs)
    return {
        "events_per_s": delivered / wall,
        "p50_ms": percentile(latencies, 0.50) / 1000,
        "p99_ms": percentile(latencies, 0.99) / 1000,
        "rounds": rounds,
        "delivered": delivered,
        "wall": wall,
        "client_cpu": client_cpu,
        "server_cpu": server_cpu,
    }


def sse_stream(port: int, server_pid: int, params: dict[str, Any]) -> dict[str, Any]:
    """``clients`` streams of ``n`` small events each, all at once: events/s and time to
    the first byte of each response."""
    clients, n, size = (
        int(params.get(k, d)) for k, d in (("clients", 10), ("n", 20000), ("size", 64))
    )
    loop = Loop()
    expected = expected_seqs(n)
    request = sse_request(f"/sse/stream?n={n}&size={size}", port)
    running = [clients]

    def on_event(conn: Conn, events: int) -> None:
        try:
            view = loop.read(conn)
        except EOFError:
            raise BenchError(f"a stream ended after {conn.next} of {n} events") from None
        if not view:
            return
        if not conn.first_byte:
            conn.first_byte = time.monotonic()
        payloads = whole_payloads(loop, conn, view)
        if payloads is None:
            return
        found = STREAM_SEQ.findall(payloads)
        start = conn.next
        if found != expected[start : start + len(found)]:
            raise BenchError(f"stream out of order: expected {start}.., got {found[:3]!r}..")
        conn.next = start + len(found)
        if conn.next == n and not conn.done_at:
            conn.done_at = time.monotonic()
            running[0] -= 1
            loop.remove(conn)

    client0, server0, started = own_cpu_seconds(), cpu_seconds_of(server_pid), time.monotonic()
    conns = []
    for _ in range(clients):
        conn = Conn(connect(port), started=time.monotonic())
        conn.sock.sendall(request)
        loop.add(conn)
        conns.append(conn)
    loop.run_until(lambda: running[0] == 0, started + float(params.get("timeout", 300)), on_event)
    wall = time.monotonic() - started
    client_cpu, server_cpu = own_cpu_seconds() - client0, cpu_seconds_of(server_pid) - server0
    loop.close()
    ttfb = [(c.first_byte - c.started) * 1000 for c in conns]
    return {
        "events_per_s": clients * n / wall,
        "ttfb_ms": percentile(ttfb, 0.5),
        "wall": wall,
        "client_cpu": client_cpu,
        "server_cpu": server_cpu,
    }


def ws_echo(port: int, server_pid: int, params: dict[str, Any]) -> dict[str, Any]:
    """``clients`` WebSockets, each with one message in flight: round trips/s and latency."""
    clients, size = int(params.get("clients", 50)), int(params.get("size", 64))
    seconds = float(params.get("seconds", 3))
    loop = Loop()
    deadline = time.monotonic() + float(params.get("setup_timeout", 60))
    conns = [open_websocket(loop, port, "/ws/echo", deadline) for _ in range(clients)]
    # Payloads numbered 0..9999 (cycled), framed and masked once each, before timing.
    frames = [ws_client_frame((b"%08d " % i).ljust(size, b"x")) for i in range(10000)]
    reply_length = 2 + size if size < 126 else 4 + size
    rtts: list[float] = []
    stop = [False]
    count = [0]

    def send_next(conn: Conn) -> None:
        conn.extra["sent"] = time.monotonic()
        conn.sock.send(frames[conn.next % 10000])

    def on_event(conn: Conn, events: int) -> None:
        try:
            view = loop.read(conn)
        except EOFError:
            raise BenchError("the server closed an echo connection") from None
        if len(view) < reply_length:
            conn.tail = bytes(view)
            return
        if len(view) > reply_length or view[0] != 0x81:
            raise BenchError(f"unexpected echo reply: {bytes(view[:16])!r}")
        if bytes(view[reply_length - size : reply_length - size + 8]) != b"%08d" % (
            conn.next % 10000
        ):
            raise BenchError("echo reply does not match the message sent")
        conn.tail = b""
        rtts.append(time.monotonic() - conn.extra["sent"])
        count[0] += 1
        conn.next += 1
        if not stop[0]:
            send_next(conn)
        else:
            conn.extra["idle"] = True

    client0, server0, started = own_cpu_seconds(), cpu_seconds_of(server_pid), time.monotonic()
    for conn in conns:
        send_next(conn)
    end = started + seconds
    loop.run_until(lambda: time.monotonic() >= end, end + 1, on_event)
    stop[0] = True
    wall = time.monotonic() - started
    total = count[0]
    client_cpu, server_cpu = own_cpu_seconds() - client0, cpu_seconds_of(server_pid) - server0
    # The replies still in flight must arrive too (nothing lost), but are not counted.
    loop.run_until(lambda: all(c.extra.get("idle") for c in conns), time.monotonic() + 30, on_event)
    loop.close()
    return {
        "round_trips_per_s": total / wall,
        "p50_ms": percentile(rtts, 0.5) * 1000,
        "p99_ms": percentile(rtts, 0.99) * 1000,
        "wall": wall,
        "client_cpu": client_cpu,
        "server_cpu": server_cpu,
    }


def idle_memory(port: int, server_pid: int, params: dict[str, Any]) -> dict[str, Any]:
    """``connections`` idle SSE subscribers: the server's RSS growth per connection."""
    count = int(params.get("connections", 5000))
    settle = float(params.get("settle", 1.0))
    loop = Loop()
    time.sleep(settle)
    before = rss_bytes_of(server_pid)
    deadline = time.monotonic() + float(params.get("setup_timeout", 180))
    conns = open_streams(loop, port, "sse", "/sse/fanout", count, deadline)
    time.sleep(settle)
    for conn in conns:
        try:
            if conn.sock.recv(1, socket.MSG_PEEK) == b"":
                raise BenchError("the server closed an idle connection")
        except BlockingIOError:
            pass
    after = rss_bytes_of(server_pid)
    loop.close()
    return {
        "rss_per_conn_kib": (after - before) / count / 1024,
        "rss_before_mib": before / 2**20,
        "rss_after_mib": after / 2**20,
        "client_cpu": 0.0,
        "server_cpu": 0.0,
        "wall": 0.0,
    }


def churn(port: int, server_pid: int, params: dict[str, Any]) -> dict[str, Any]:
    """``concurrency`` loops of: connect, subscribe, first event, close."""
    concurrency, seconds = int(params.get("concurrency", 50)), float(params.get("seconds", 3))
    loop = Loop()
    request = sse_request("/sse/fanout", port)
    completed = [0]
    stop = [False]
    active = [0]

    def start() -> None:
        conn = Conn(connect(port, blocking=False))
        loop.add(conn, select.EPOLLOUT)
        active[0] += 1

    def on_event(conn: Conn, events: int) -> None:
        if not conn.extra.get("sent"):
            if events & (select.EPOLLERR | select.EPOLLHUP):
                raise BenchError("connect failed")
            conn.sock.sendall(request)
            conn.extra["sent"] = True
            loop.modify(conn, select.EPOLLIN)
            return
        try:
            data = bytes(loop.read(conn))
        except EOFError:
            raise BenchError("the server closed a new subscriber before its first event") from None
        if not data:
            return
        if conn.head.endswith(b"\r\n\r\n"):
            conn.body += data
        elif not take_head(conn, data, b"HTTP/1.1 200"):
            return
        if ready_signal("sse", conn.body):
            loop.remove(conn)
            active[0] -= 1
            completed[0] += 1
            if not stop[0]:
                start()

    client0, server0, started = own_cpu_seconds(), cpu_seconds_of(server_pid), time.monotonic()
    for _ in range(concurrency):
        start()
    end = started + seconds
    loop.run_until(lambda: time.monotonic() >= end, end + 5, on_event)
    stop[0] = True
    wall = time.monotonic() - started
    total = completed[0]
    client_cpu, server_cpu = own_cpu_seconds() - client0, cpu_seconds_of(server_pid) - server0
    loop.run_until(lambda: active[0] == 0, time.monotonic() + 30, on_event)
    loop.close()
    return {
        "connections_per_s": total / wall,
        "wall": wall,
        "client_cpu": client_cpu,
        "server_cpu": server_cpu,
    }


WORKLOADS: dict[str, Callable[[int, int, dict[str, Any]], dict[str, Any]]] = {
    "sse_fanout": lambda port, pid, params: fanout(port, pid, "sse", params),
    "ws_fanout": lambda port, pid, params: fanout(port, pid, "ws", params),
    "sse_stream": sse_stream,
    "ws_echo": ws_echo,
    "idle_memory": idle_memory,
    "churn": churn,
}


Workloads = dict[str, Callable[[int, int, dict[str, Any]], dict[str, Any]]]


def main(argv: Iterable[str] | None = None, workloads: Workloads | None = None) -> int:
    """The command line; ``workloads`` replaces :data:`WORKLOADS` (``loadgen_llm.py``)."""
    workloads = WORKLOADS if workloads is None else workloads
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", choices=sorted(workloads))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--params", default="{}", help="the workload's parameters, as JSON")
    args = parser.parse_args(None if argv is None else list(argv))
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        result: dict[str, Any] = {
            "ok": True,
            **workloads[args.workload](args.port, args.server_pid, json.loads(args.params)),
        }
    except (BenchError, OSError) as exc:
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    if result.get("wall"):
        result["client_busy"] = result["client_cpu"] / result["wall"]
        result["server_busy"] = result["server_cpu"] / result["wall"]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
