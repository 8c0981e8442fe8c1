"""What compression saves, and what it costs, per event: SSE gzip and WebSocket deflate.

Run:  .venv/bin/python benchmarks/compression_bench.py [--events 20000]

Three event shapes: OpenAI-style token chunks (small, repetitive JSON), a market ticker
(medium JSON), and ~550-byte log lines.  For each: the bytes on the wire (per event, and the
ratio to uncompressed) and the CPU time per event, for

* SSE as sent (identity), and SSE gzip with a flush per event (``GzipEventEncoder``);
* WebSocket frames without compression, with permessage-deflate (context takeover), and with
  permessage-deflate without context takeover (what ``DROP_OLDEST`` routes use).

Measured on the sans-IO core alone (no sockets), so the numbers are the encoding cost itself.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable

import wsproto
import wsproto.events as ws
from wsproto.extensions import PerMessageDeflate

from rawstream.core import Event, GzipEventEncoder, HTTPConnection, RequestHead, WebSocketConnection


def token_events(count: int) -> list[str]:
    words = ["the", "of", "and", "to", "in", "is", "you", "that", "it", "he", "was", "for"]
    return [
        json.dumps(
            {
                "id": "chatcmpl-42",
                "object": "chat.completion.chunk",
                "created": 1795283047,
                "model": "rawstream-demo",
                "choices": [{"index": 0, "delta": {"content": " " + random.choice(words)}}],
            }
        )
        for _ in range(count)
    ]


def ticker_events(count: int) -> list[str]:
    symbols = ["ACME", "INIT", "GLOB", "HOOLI", "UMBR"]
    return [
        json.dumps(
            {
                "symbol": random.choice(symbols),
                "price": round(random.uniform(10, 500), 2),
                "volume": random.randint(1, 10_000),
                "time": 1795283047.0 + i / 10,
            }
        )
        for i in range(count)
    ]


def log_events(count: int) -> list[str]:
    return [
        f"2026-11-21T17:40:{i % 60:02d}Z INFO worker-{i % 8} "
        f"request id={random.getrandbits(64):016x} " + "path=/api/v1/items status=200 " * 16
        for i in range(count)
    ]


def websocket(deflate: bool, takeover: bool) -> WebSocketConnection:
    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    http = HTTPConnection()
    extensions = [PerMessageDeflate()] if deflate else []
    http.receive_data(client.send(ws.Request(host="bench", target="/", extensions=extensions)))
    head = http.next_event()
    assert isinstance(head, RequestHead)
    server = WebSocketConnection(permessage_deflate=deflate, context_takeover=takeover)
    server.start(head)
    server.accept()
    server.data_to_send()
    return server


def sse_identity(payload: str) -> int:
    return len(Event(payload).encode())


def sse_gzip(encoder: GzipEventEncoder) -> Callable[[str], int]:
    return lambda payload: len(encoder.encode(Event(payload).encode()))


def ws_sender(conn: WebSocketConnection) -> Callable[[str], int]:
    def encode(payload: str) -> int:
        conn.send_message(payload)
        return len(conn.data_to_send())

    return encode


def measure(encode: Callable[[str], int], payloads: list[str]) -> tuple[float, float]:
    """(bytes per event, microseconds per event)."""
    start = time.perf_counter()
    total = sum(encode(p) for p in payloads)
    elapsed = time.perf_counter() - start
    return total / len(payloads), elapsed / len(payloads) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    count = parser.parse_args().events
    random.seed(7)
    print("| events | encoding | bytes/event | ratio | CPU µs/event |")
    print("|---|---|---:|---:|---:|")
    for name, make in (
        ("LLM tokens", token_events),
        ("ticker", ticker_events),
        ("log lines", log_events),
    ):
        payloads = make(count)
        rows = [
            ("SSE identity", sse_identity),
            ("SSE gzip, flush per event", sse_gzip(GzipEventEncoder())),
            ("WebSocket, no compression", ws_sender(websocket(False, True))),
            ("WebSocket, permessage-deflate", ws_sender(websocket(True, True))),
            ("WebSocket, deflate, no context takeover", ws_sender(websocket(True, False))),
        ]
        baseline = None
        for label, encode in rows:
            size, micros = measure(encode, payloads)
            if label.endswith("identity") or label.endswith("no compression"):
                baseline = size
            assert baseline is not None
            print(f"| {name} | {label} | {size:,.1f} | {size / baseline:.2f} | {micros:.1f} |")


if __name__ == "__main__":
    main()
