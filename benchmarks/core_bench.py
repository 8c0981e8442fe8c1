"""The sans-IO core alone: bytes in, bytes out, no sockets, no scheduler.

Run:  .venv/bin/python benchmarks/core_bench.py [--seconds 1.0]

Prints operations per second for the protocol work on the hot paths, so a regression in the
core shows without network noise.  Numbers are for comparing runs on one machine (or rawstream
against its own previous commit), never asserted anywhere.

* ``sse_encode``: ``Event.encode()`` of a 64-byte event (done once per publish);
* ``sse_chunk``: one encoded event framed as an HTTP/1.1 chunk by h11 (done per subscriber
  today: issue 6 will share pre-framed chunks between subscribers);
* ``ws_frame``: one 64-byte text message framed by wsproto;
* ``ws_parse``: one masked 64-byte client frame parsed and assembled;
* ``http_request``: one keep-alive GET parsed and answered with a small fixed response;
* ``sse_parse``: events per second through the client's parser (``EventStreamParser``), fed
  a stream of 64-byte token events in 4 KiB reads, as a socket would deliver them.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import wsproto
import wsproto.events as ws

from rawstream.core import (
    NEED_DATA,
    Event,
    EventStreamParser,
    HTTPConnection,
    RequestHead,
    WebSocketConnection,
)

PAYLOAD = "x" * 64


def measure(name: str, step: Callable[[], object], seconds: float, per_step: int = 1) -> None:
    """Print how many operations a second ``step`` does (each call does ``per_step``)."""
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(1000):
            step()
        count += 1000 * per_step
        now = time.perf_counter()
        if now >= deadline:
            break
    print(f"{name:14s} {count / (now - start):>12,.0f} /s")


def streaming_http() -> HTTPConnection:
    conn = HTTPConnection()
    conn.receive_data(b"GET /events HTTP/1.1\r\nHost: bench\r\n\r\n")
    assert isinstance(conn.next_event(), RequestHead)
    conn.send_response(200, [(b"content-type", b"text/event-stream")])
    conn.data_to_send()
    return conn


def open_websocket() -> tuple[WebSocketConnection, wsproto.WSConnection]:
    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    http = HTTPConnection()
    http.receive_data(client.send(ws.Request(host="bench", target="/ws")))
    head = http.next_event()
    assert isinstance(head, RequestHead)
    server = WebSocketConnection(permessage_deflate=False)
    server.start(head)
    server.accept()
    client.receive_data(server.data_to_send())
    list(client.events())
    return server, client


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    seconds = parser.parse_args().seconds

    event = Event(PAYLOAD, id="12345", event="token")
    measure("sse_encode", event.encode, seconds)

    http = streaming_http()
    encoded = event.encode()

    def sse_chunk() -> None:
        http.send_body(encoded)
        http.data_to_send()

    measure("sse_chunk", sse_chunk, seconds)

    server, client = open_websocket()

    def ws_frame() -> None:
        server.send_message(PAYLOAD)
        server.data_to_send()

    measure("ws_frame", ws_frame, seconds)

    frame = client.send(ws.TextMessage(data=PAYLOAD))

    def ws_parse() -> None:
        server.receive_data(frame)
        server.events()

    measure("ws_parse", ws_parse, seconds)

    request = b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n"
    keepalive = HTTPConnection()

    def http_request() -> None:
        keepalive.receive_data(request)
        keepalive.next_event()
        keepalive.next_event()
        keepalive.send_response(200, [(b"content-length", b"2")])
        keepalive.send_body(b"ok")
        keepalive.end_response()
        keepalive.data_to_send()
        keepalive.start_next_cycle()

    measure("http_request", http_request, seconds)
    assert keepalive.next_event() is NEED_DATA

    stream = encoded * 256
    reads = [stream[i : i + 4096] for i in range(0, len(stream), 4096)]
    sse_parser = EventStreamParser()

    def sse_parse() -> None:
        for read in reads:
            sse_parser.feed(read)

    measure("sse_parse", sse_parse, seconds, per_step=256)


if __name__ == "__main__":
    main()
