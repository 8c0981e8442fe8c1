"""Server settings: every limit and timeout in one place, each with a safe default."""

from __future__ import annotations

from dataclasses import dataclass

from ..cors import CORS, check_origins
from ..policy import SlowConsumer

__all__ = ["Config"]

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Limits and timeouts of a :class:`~rawstream.server.Server` (seconds, bytes).

    Attributes:
        max_connections: open connections served at once; the next ones get 503.
        max_connections_per_client: open connections one client address may hold; the next
            ones get 429 (None: no per-address cap).
        header_timeout: time allowed to receive a whole request head (slowloris guard);
            also the longest pause allowed while a request body streams in.
        keepalive_timeout: how long an idle kept-alive connection waits for its next request.
        max_head_bytes: largest request head (request line and headers); 431 beyond.
        max_request_line_bytes: longest request line (method, target, version); 414 beyond.
        max_header_count: most header fields in one request head; 431 beyond.
        max_body_bytes: largest request body; 413 beyond.
        ws_max_message_bytes: largest WebSocket message after reassembly (and after
            decompression, checked as it inflates); close 1009 beyond.
        ws_max_fragments: most frames one WebSocket message may be cut into; close 1009 beyond.
        ws_allowed_origins: web origins (``https://example.com``) whose pages may open a
            WebSocket besides same-origin ones and clients that send no ``Origin``; ``"*"``
            allows any.  Others get 403.  A route's own list adds to it.
        cors: cross-origin access to plain HTTP and SSE routes (None: no CORS headers, so
            browsers keep other origins' pages from reading responses).  A route may set its own.
        ws_queue_bytes: received WebSocket messages waiting for the handler; above it the
            server stops reading from that client.
        close_timeout: how long a closing connection gets: to receive the client's close frame
            after ours (WebSocket), and to write its last queued bytes (every connection).
        permessage_deflate: accept WebSocket compression when a client offers it.
        outbox_high_bytes: bytes queued for one connection at which senders start to wait
            (or the slow-consumer policy acts).
        outbox_low_bytes: bytes the outbox must drain down to before waiting senders resume.
        max_write_bytes: the most one ``send_all`` writes (coalesced events beyond it wait
            for the next write).
        slow_consumer: the default policy for a stream whose outbox is full (routes and
            streams may choose their own).
        send_timeout: how long a ``BLOCK`` sender may wait for room before its consumer is
            disconnected.
        read_buffer_bytes: bytes read ahead from one client before the server stops reading.
        sse_gzip: gzip SSE responses for clients that accept it (each event flushed, so it
            decodes on arrival); routes may choose for themselves.
        sse_keepalive: seconds of silence after which an SSE stream gets a comment line, so
            proxies keep it open and a vanished client is found; None turns it off.
        ws_ping_interval: seconds between WebSocket pings; None turns them off.
        ws_ping_timeout: seconds a pong may take before the connection is closed with 1011.
        drain_timeout: on shutdown, how long open streams get to finish before cancellation.
        shutdown_retry_ms: range of the ``retry:`` hint sent to SSE clients on shutdown;
            each stream gets a random value in it, so clients do not reconnect all at once.
    """

    max_connections: int = 10_000
    max_connections_per_client: int | None = None
    header_timeout: float = 10.0
    keepalive_timeout: float = 5.0
    max_head_bytes: int = 16 * KiB
    max_request_line_bytes: int = 8 * KiB
    max_header_count: int = 100
    max_body_bytes: int = 1 * MiB
    ws_max_message_bytes: int = 1 * MiB
    ws_max_fragments: int = 1024
    ws_allowed_origins: tuple[str, ...] = ()
    cors: CORS | None = None
    ws_queue_bytes: int = 1 * MiB
    close_timeout: float = 5.0
    permessage_deflate: bool = True
    outbox_high_bytes: int = 256 * KiB
    outbox_low_bytes: int = 64 * KiB
    max_write_bytes: int = 256 * KiB
    slow_consumer: SlowConsumer = SlowConsumer.BLOCK
    send_timeout: float = 30.0
    read_buffer_bytes: int = 64 * KiB
    sse_gzip: bool = False
    sse_keepalive: float | None = 15.0
    ws_ping_interval: float | None = 20.0
    ws_ping_timeout: float = 20.0
    drain_timeout: float = 10.0
    shutdown_retry_ms: tuple[int, int] = (1000, 5000)

    def __post_init__(self) -> None:
        """Refuse settings that would silently turn a guard off (a negative size limit makes
        zlib's bound unbounded, a malformed origin never matches).

        Raises:
            ValueError: a limit or timeout out of range, or a malformed origin.
        """
        for name in _POSITIVE:
            value = getattr(self, name)
            if not value > 0:  # (NaN too)
                raise ValueError(f"{name} must be more than 0, not {value!r}")
        for name in ("ws_ping_interval", "sse_keepalive", "max_connections_per_client"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be more than 0 (or None: off), not {value!r}")
        low, high = self.shutdown_retry_ms
        if not 0 <= low <= high:
            raise ValueError(f"shutdown_retry_ms must be 0 <= low <= high, not {(low, high)}")
        # A malformed origin would never match: refuse it here rather than let it pass unseen.
        object.__setattr__(self, "ws_allowed_origins", check_origins(self.ws_allowed_origins))


#: Settings that must be more than zero.
_POSITIVE = (
    "max_connections",
    "header_timeout",
    "keepalive_timeout",
    "max_head_bytes",
    "max_request_line_bytes",
    "max_header_count",
    "max_body_bytes",
    "ws_max_message_bytes",
    "ws_max_fragments",
    "ws_queue_bytes",
    "close_timeout",
    "outbox_high_bytes",
    "outbox_low_bytes",
    "max_write_bytes",
    "send_timeout",
    "read_buffer_bytes",
    "ws_ping_timeout",
    "drain_timeout",
)
