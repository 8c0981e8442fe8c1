"""Fuzzing the sans-IO core with hypothesis: hostile bytes in, only documented behaviour out.

Four targets, each driven the way the server layer drives it:

* :class:`HTTPConnection` with (a) random bytes and (b) valid requests, pipelined, then
  mutated (bytes flipped, inserted, deleted, the whole cut short, header lines repeated) and
  fed in random pieces;
* :class:`WebSocketConnection`, after a real handshake, with (c) random frames (any FIN, RSV,
  opcode, mask and length encoding; plain or deflated payloads) and fully random bytes, with
  and without permessage-deflate;
* :class:`EventStreamParser` with (d) random bytes and SSE fragments, in random pieces.

What is checked: the core returns only its documented events (or ``NEED_DATA``) and raises
only its own :class:`ProtocolError` family (never for a WebSocket peer's bytes, which end in a
close instead); limits hold on what comes out; after a ``RemoteProtocolError`` ``send_error``
still writes a response an independent HTTP parser (h11's client) accepts; the frames the
WebSocket core writes are well formed, carry only valid close codes and nothing after the
close; no event follows ``Closed``; bytes held unparsed stay bounded.

Reproducible and bounded for CI: ``derandomize=True`` (examples come from a fixed seed), no
example database, a fixed number of examples per test.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto import events as we
from wsproto.extensions import PerMessageDeflate

from rawstream.core import (
    NEED_DATA,
    BodyData,
    ClientClosed,
    Closed,
    EndOfRequest,
    EventStreamParser,
    EventTooLargeError,
    HTTPConnection,
    LocalProtocolError,
    Message,
    Ping,
    Pong,
    RemoteProtocolError,
    RequestHead,
    ServerSentEvent,
    WebSocketConnection,
    WebSocketState,
    reason_phrase,
)
from rawstream.core.websocket import payload_size

from .helpers import FRAMING_HEADERS


def fuzz(examples: int) -> settings:
    """Hypothesis settings for one fuzz test: ``examples`` examples from a fixed seed."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at ``cuts`` (positions beyond its end clamp to it)."""
    points = sorted({min(cut, len(data)) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


cuts_st = st.lists(st.integers(0, 2048), max_size=8)


# -- HTTP -----------------------------------------------------------------------------------------

MAX_HEAD = 1024
MAX_LINE = 256
MAX_HEADERS = 16
MAX_BODY = 256


@dataclass
class HTTPRun:
    """What one HTTP connection produced for the fuzzer's bytes."""

    heads: list[RequestHead] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    error: RemoteProtocolError | None = None


def _answer_error(server: HTTPConnection, error: RemoteProtocolError) -> None:
    """The error's answer is a valid response (h11's client parses it) that closes."""
    assert 400 <= error.status_hint < 600
    assert reason_phrase(error.status_hint), f"no reason phrase for {error.status_hint}"
    assert not server.keep_alive and server.will_close
    if server.response_started:
        return  # the server layer just closes: nothing more can be said on this connection
    server.data_to_send()
    server.send_error(error.status_hint, str(error), error.headers)
    method = "HEAD" if server.is_head_request else "GET"  # (a HEAD's answer has no body)
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
    client.receive_data(server.data_to_send())
    response = client.next_event()
    assert isinstance(response, h11.Response), response
    assert response.status_code == error.status_hint
    assert (b"connection", b"close") in [(k, v.lower()) for k, v in response.headers]
    if method == "GET":
        assert isinstance(client.next_event(), h11.Data)
    assert isinstance(client.next_event(), h11.EndOfMessage)


def drive_http(pieces: list[bytes], *, eof: bool, respond_early: bool) -> HTTPRun:
    """Feed ``pieces`` to an HTTPConnection as the server layer does: read events until
    NEED_DATA, answer each request (after its body, or as soon as its head is in when
    ``respond_early``), start the next cycle on a kept-alive connection, stop once the
    connection is to close.  Checks every invariant on the way."""
    server = HTTPConnection(
        max_head_bytes=MAX_HEAD,
        max_request_line_bytes=MAX_LINE,
        max_header_count=MAX_HEADERS,
        max_body_bytes=MAX_BODY,
    )
    run = HTTPRun()

    def respond() -> None:
        server.send_response(200, [(b"content-length", b"2")])
        server.send_body(b"ok")
        server.end_response()
        assert server.data_to_send().startswith(b"HTTP/1.1 200 OK\r\n")

    feeds: list[Callable[[], None]] = [partial(server.receive_data, piece) for piece in pieces]
    if eof:
        feeds.append(server.receive_eof)
    try:
        for feed in feeds:
            feed()
            while True:
                event = server.next_event()
                if event is NEED_DATA:
                    # h11 holds at most max_head_bytes of an unfinished event (then 431)
                    assert server.buffered_bytes <= MAX_HEAD
                    break
                if isinstance(event, RequestHead):
                    assert len(event.headers) <= MAX_HEADERS
                    line = len(event.method) + len(event.target) + len(event.http_version) + 7
                    assert line <= MAX_LINE
                    assert event.http_version.startswith("1.")
                    run.heads.append(event)
                    run.bodies.append(b"")
                    if respond_early:
                        respond()
                elif isinstance(event, BodyData):
                    run.bodies[-1] += event.data
                    assert len(run.bodies[-1]) <= MAX_BODY
                elif isinstance(event, EndOfRequest):
                    assert server.request_complete
                    if not server.response_started:
                        respond()
                    if not server.keep_alive:
                        return run  # the server closes the connection here
                    server.start_next_cycle()
                else:
                    assert isinstance(event, ClientClosed), event
                    return run
    except RemoteProtocolError as error:
        run.error = error
        _answer_error(server, error)
    return run


# Valid requests, as an independent client (h11) writes them.  Headers that change framing
# or the connection's life (FRAMING_HEADERS) are left to the mutations.
header_names = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).map(str.encode)
header_values = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=24).map(
    str.encode
)
targets = st.text("abcXYZ019-._~%!$&'()*+,;=:@/?", max_size=40).map(lambda t: ("/" + t).encode())


@st.composite
def valid_request(draw: st.DrawFn) -> bytes:
    """One whole request from h11's client: any method, target and headers, maybe a body
    (by Content-Length or chunked)."""
    client = h11.Connection(h11.CLIENT)
    headers = [(b"host", b"example.com")]
    headers += draw(
        st.lists(
            st.tuples(
                header_names.filter(lambda name: name not in FRAMING_HEADERS),
                header_values,
            ),
            max_size=6,
        )
    )
    body = draw(st.binary(max_size=64))
    chunked = bool(body) and draw(st.booleans())
    if chunked:
        headers.append((b"transfer-encoding", b"chunked"))
    elif body:
        headers.append((b"content-length", str(len(body)).encode()))
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD", b"OPTIONS", b"PATCH"]))
    data = client.send(h11.Request(method=method, target=draw(targets), headers=headers)) or b""
    if body:
        half = draw(st.integers(0, len(body)))
        for piece in (body[:half], body[half:]) if chunked else (body,):
            if piece:
                data += client.send(h11.Data(data=piece)) or b""
    return data + (client.send(h11.EndOfMessage()) or b"")


tokens = st.sampled_from(
    [
        b"\r\n",
        b"\n",
        b"\r",
        b" ",
        b"\t",
        b":",
        b"\x00",
        b"\xff",
        b"HTTP/1.1",
        b"HTTP/2.0",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"Content-Length: 3\r\n",
        b"Content-Length: 99999999999999999999\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: gzip\r\n",
        b"Connection: close\r\n",
        b"Expect: 100-continue\r\n",
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n",
        b"0\r\n\r\n",
        b"ffffffffffffffffffff\r\n",
        b"a" * 300,
        b"X: y\r\n" * 20,
    ]
)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` after a few random mutations."""
    buffer = bytearray(data)
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]))
        at = draw(st.integers(0, len(buffer)))
        if kind == "flip" and at < len(buffer):
            buffer[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            buffer[at:at] = draw(tokens | st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del buffer[at : at + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del buffer[at:]
        elif kind == "duplicate":
            lines = bytes(buffer).split(b"\r\n")
            if len(lines) > 2:
                index = draw(st.integers(1, len(lines) - 2))
                lines[index:index] = [lines[index]] * draw(st.sampled_from([1, 1, 1, 20]))
                buffer = bytearray(b"\r\n".join(lines))
    return bytes(buffer)


random_http_bytes = st.lists(tokens | st.binary(max_size=32), max_size=16).map(b"".join)


@fuzz(300)
@given(
    data=random_http_bytes | st.binary(max_size=512),
    cuts=cuts_st,
    eof=st.booleans(),
    respond_early=st.booleans(),
)
def test_http_random_bytes(data: bytes, cuts: list[int], eof: bool, respond_early: bool) -> None:
    """(a) Random bytes, in random pieces: events, NEED_DATA or RemoteProtocolError only."""
    drive_http(split(data, cuts), eof=eof, respond_early=respond_early)


@fuzz(300)
@given(
    requests=st.lists(valid_request(), min_size=1, max_size=3),
    mutate=st.booleans(),
    cuts=cuts_st,
    eof=st.booleans(),
    respond_early=st.booleans(),
    data=st.data(),
)
def test_http_mutated_requests(
    requests: list[bytes],
    mutate: bool,
    cuts: list[int],
    eof: bool,
    respond_early: bool,
    data: st.DataObject,
) -> None:
    """(b) Valid pipelined requests, maybe mutated, in random pieces.  Unmutated, every one
    of them comes out whole, in order, and is answered."""
    stream = b"".join(requests)
    if mutate:
        stream = data.draw(mutated(stream))
    run = drive_http(split(stream, cuts), eof=eof, respond_early=respond_early)
    if not mutate:
        assert run.error is None, run.error
        assert len(run.heads) == len(requests)
        for head, request, body in zip(run.heads, requests, run.bodies, strict=True):
            assert request.startswith(f"{head.method} {head.target} HTTP/1.1\r\n".encode())
            assert body == h11_body(request)


def h11_body(request: bytes) -> bytes:
    """The body of one request, as h11's own server reads it."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(request)
    body = b""
    while not isinstance(event := conn.next_event(), h11.EndOfMessage):
        if isinstance(event, h11.Data):
            body += event.data
    return body


# -- WebSocket ------------------------------------------------------------------------------------

MAX_MESSAGE = 256
MAX_FRAGMENTS = 4
#: Close codes the core sends on its own: protocol error, invalid data, too big.
FAILURE_CODES = {1002, 1007, 1009}


def open_websocket(deflate: bool) -> WebSocketConnection:
    """A WebSocketConnection after a real handshake with wsproto's client (permessage-deflate
    offered, so negotiated when ``deflate``)."""
    return open_pair(deflate)[1]


def open_pair(deflate: bool) -> tuple[WSConnection, WebSocketConnection]:
    """wsproto's client and our server, after the handshake (see :func:`open_websocket`)."""
    client = WSConnection(ConnectionType.CLIENT)
    request = client.send(
        we.Request(host="example.com", target="/ws", extensions=[PerMessageDeflate()])
    )
    http = HTTPConnection()
    http.receive_data(request)
    head = http.next_event()
    assert isinstance(head, RequestHead)
    server = WebSocketConnection(
        max_message_bytes=MAX_MESSAGE, max_fragments=MAX_FRAGMENTS, permessage_deflate=deflate
    )
    server.start(head)
    server.accept()
    client.receive_data(server.data_to_send())
    (accepted,) = client.events()
    assert isinstance(accepted, we.AcceptConnection)
    assert server.extensions == (["permessage-deflate"] if deflate else [])
    return client, server


def valid_close_code(code: int) -> bool:
    """A code an endpoint may put in a close frame (RFC 6455 7.4, as wsproto accepts them)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Parse what the server wrote: whole, unmasked, final control frames only."""
    frames = []
    at = 0
    while at < len(data):
        assert at + 2 <= len(data), "a whole frame header"
        first, second = data[at], data[at + 1]
        assert first & 0xF0 == 0x80, f"control frames are final, without RSV bits: {first:#x}"
        assert second & 0x80 == 0, "a server frame is not masked"
        size = second & 0x7F
        assert size <= 125, "a control frame's payload fits in 125 bytes"
        payload = data[at + 2 : at + 2 + size]
        assert len(payload) == size, "a whole frame"
        frames.append((first & 0x0F, payload))
        at += 2 + size
    return frames


def check_output(
    data: bytes, pings: int, first_close: int | None, *, must_close: bool = False
) -> None:
    """The server wrote pongs (no more than the pings it got) and at most one close, last,
    with a valid code (``first_close``: the code of the close it sent first); with
    ``must_close`` (the core ended the WebSocket other than by EOF), that close is there."""
    frames = server_frames(data)
    opcodes = [opcode for opcode, _ in frames]
    assert set(opcodes) <= {0x8, 0xA}, opcodes
    assert opcodes.count(0xA) <= pings
    if must_close:
        assert 0x8 in opcodes, "the WebSocket ended without a close frame sent"
    if 0x8 in opcodes:
        assert opcodes.index(0x8) == len(opcodes) - 1, "nothing after the close frame"
        payload = frames[-1][1]
        if payload:
            (code,) = struct.unpack("!H", payload[:2])
            assert valid_close_code(code), code
            payload[2:].decode()  # a valid UTF-8 reason
            assert code == first_close
        else:
            assert first_close == 1005  # an empty close answered with an empty close


@st.composite
def ws_frame(draw: st.DrawFn) -> bytes:
    """One client frame, mostly well formed, each header field sometimes wrong: FIN, RSV
    bits, opcode (reserved ones too), mask, length encoding (non-minimal, or a length that
    does not match the payload); the payload plain, UTF-8, a close code, or deflated."""
    opcode = draw(st.sampled_from([0x0, 0x1, 0x2, 0x8, 0x9, 0xA] * 4 + list(range(16))))
    fin = draw(st.sampled_from([True, True, False]))
    kind = draw(st.sampled_from(["binary", "text", "close", "deflated", "zeros"]))
    if kind == "text":
        payload = draw(st.text(max_size=40)).encode()
    elif kind == "close":
        payload = (
            struct.pack("!H", draw(st.integers(0, 5000))) + draw(st.text(max_size=10)).encode()
        )
    elif kind in ("deflated", "zeros"):
        plain = (
            bytes(draw(st.integers(0, 4 * MAX_MESSAGE)))
            if kind == "zeros"
            else draw(st.binary(max_size=80))
        )
        compressor = zlib.compressobj(wbits=-15)
        payload = compressor.compress(plain) + compressor.flush(zlib.Z_SYNC_FLUSH)
        payload = payload[:-4] if draw(st.booleans()) else payload
    else:
        payload = draw(st.binary(max_size=140))
    rsv = 0x40 if kind in ("deflated", "zeros") and draw(st.booleans()) else 0
    rsv |= draw(st.sampled_from([0] * 8 + [0x40, 0x20, 0x10]))
    masked = draw(st.sampled_from([True] * 9 + [False]))
    key = draw(st.binary(min_size=4, max_size=4)) if masked else b""
    size = len(payload) + draw(st.sampled_from([0] * 8 + [-1, 1, 1000]))
    size = max(size, 0)
    encoding = draw(st.sampled_from(["minimal"] * 6 + ["16", "64"]))
    if encoding == "minimal" and size < 126:
        length = bytes([size])
    elif encoding != "64" and size < 1 << 16:
        length = bytes([126]) + struct.pack("!H", size)
    else:
        length = bytes([127]) + struct.pack("!Q", size)
    length = bytes([length[0] | (0x80 if masked else 0)]) + length[1:]
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if masked else payload
    return bytes([(0x80 if fin else 0) | rsv | opcode]) + length + key + body


ws_stream = st.lists(ws_frame() | st.binary(min_size=1, max_size=24), max_size=10).map(b"".join)


@fuzz(400)
@given(
    data=ws_stream | st.binary(max_size=256),
    cuts=cuts_st,
    deflate=st.booleans(),
    close_first=st.booleans(),
    eof=st.booleans(),
)
def test_websocket_random_frames(
    data: bytes, cuts: list[int], deflate: bool, close_first: bool, eof: bool
) -> None:
    """(c) Random frames and bytes after the handshake, with and without permessage-deflate,
    in random pieces: the peer's bytes never raise; only documented events, none after
    Closed; no message over max_message_bytes; the frames written are valid; EOF ends it."""
    server = open_websocket(deflate)
    first_close = None
    if close_first:
        server.close(1001)
        first_close = 1001
    output = server.data_to_send()
    pings = 0
    closed = ended_by_frame = False
    for piece in split(data, cuts):
        server.receive_data(piece)
        for event in server.events():
            assert not closed, f"{event} after Closed"
            assert isinstance(event, Message | Ping | Pong | Closed), event
            if isinstance(event, Message):
                assert payload_size(event.data) <= MAX_MESSAGE
            elif isinstance(event, Ping):
                pings += 1
            elif isinstance(event, Closed):
                closed = ended_by_frame = True
                assert server.state is WebSocketState.CLOSED
                assert event.code == server.close_code
                if not event.by_peer:
                    assert event.code in FAILURE_CODES, event
                if first_close is None:
                    first_close = event.code
        output += server.data_to_send()
        assert server.state is not WebSocketState.HANDSHAKE
    if eof:
        server.receive_eof()
        for event in server.events():  # abnormal closure, unless closed already
            assert not closed, f"{event} after Closed"
            assert event == Closed(1006, "", by_peer=True)
            closed = True
        assert server.state is WebSocketState.CLOSED
        assert server.close_code is not None
        output += server.data_to_send()
    check_output(output, pings, first_close, must_close=ended_by_frame or close_first)
    if server.state is not WebSocketState.OPEN:
        with pytest.raises(LocalProtocolError):
            server.send_message("after the end")


@fuzz(100)
@given(
    sizes=st.lists(st.integers(0, 2 * MAX_MESSAGE), min_size=1, max_size=6),
    cuts=cuts_st,
    text=st.booleans(),
)
def test_websocket_deflated_fragments(sizes: list[int], cuts: list[int], text: bool) -> None:
    """(c) A real client's compressed fragments, in random pieces: a message within both
    limits comes out whole, one past either gets close 1009, nothing else."""
    client, server = open_pair(deflate=True)
    parts: list[str | bytes] = ["\u00e9" * (size // 2) if text else bytes(size) for size in sizes]
    data = b"".join(
        client.send(
            we.TextMessage(data=part, message_finished=i == len(parts) - 1)  # type: ignore[arg-type]
            if text
            else we.BytesMessage(data=part, message_finished=i == len(parts) - 1)  # type: ignore[arg-type]
        )
        for i, part in enumerate(parts)
    )
    events = []
    for piece in split(data, cuts):
        server.receive_data(piece)
        events += server.events()
    whole = "".join(parts) if text else b"".join(parts)  # type: ignore[arg-type]
    too_big = payload_size(whole) > MAX_MESSAGE
    too_many = len(parts) > MAX_FRAGMENTS
    # Past both limits, whichever is seen first ends it: the frame count at the end of the
    # last allowed frame, the size as soon as the bytes inflate past it (and the client's
    # compressor may hold a frame's bytes back until the message's last one).
    reasons = {"message too big"} if too_big else set()
    reasons |= {"too many fragments"} if too_many else set()
    if reasons:
        (closed,) = events
        assert isinstance(closed, Closed)
        assert (closed.code, closed.by_peer) == (1009, False)
        assert closed.reason in reasons
    else:
        assert events == [Message(whole)]


# -- SSE parser -----------------------------------------------------------------------------------

MAX_EVENT = 64

sse_tokens = st.sampled_from(
    [
        b"data: ",
        b"data:",
        b"data",
        b"event: ",
        b"id: ",
        b"id: \x00",
        b"retry: ",
        b"retry: 123",
        b"retry: 99999999999999999999999",
        b": comment",
        b":",
        b"\n",
        b"\r",
        b"\r\n",
        b"\n\n",
        b"\xef\xbb\xbf",
        b"\xef\xbb",
        b"\xff\xfe",
        b"\xc3",
        b"x" * 70,
        b"hello",
    ]
)
sse_bytes = st.lists(sse_tokens | st.binary(max_size=16), max_size=24).map(b"".join)


def parse_sse(pieces: list[bytes]) -> tuple[list[ServerSentEvent], bool]:
    """Feed ``pieces`` to one parser: its events and whether it refused an oversized one."""
    parser = EventStreamParser(max_event_bytes=MAX_EVENT)
    events: list[ServerSentEvent] = []
    for piece in pieces:
        try:
            events += parser.feed(piece)
        except EventTooLargeError as error:
            assert error.limit == MAX_EVENT
            with pytest.raises(LocalProtocolError):
                parser.feed(b"\n\n")
            return events, True
    parser.feed_eof()
    return events, False


@fuzz(300)
@given(data=sse_bytes | st.binary(max_size=256), cuts=cuts_st)
def test_sse_parser_random_bytes(data: bytes, cuts: list[int]) -> None:
    """(d) Random bytes, in random pieces: ServerSentEvents or EventTooLargeError only; no
    event's data or type longer than the limit; and where the stream is within its limits,
    the same events however it is cut."""
    events, refused = parse_sse(split(data, cuts))
    for event in events:
        assert isinstance(event, ServerSentEvent)
        assert len(event.data) <= MAX_EVENT and len(event.event) <= MAX_EVENT
        assert "\r" not in event.data and "\x00" not in event.id
    whole, whole_refused = parse_sse([data])
    if not refused and not whole_refused:
        assert events == whole
