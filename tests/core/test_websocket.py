"""WebSocketConnection, driven with byte strings; the peer is a real wsproto client."""

from __future__ import annotations

import tracemalloc
import zlib
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.frames import client_frame
from wsproto import ConnectionType, WSConnection
from wsproto import events as we
from wsproto.connection import ConnectionState
from wsproto.extensions import PerMessageDeflate

from rawstream.core import (
    Closed,
    EndOfRequest,
    HTTPConnection,
    LocalProtocolError,
    Message,
    Ping,
    Pong,
    RemoteProtocolError,
    RequestHead,
    WebSocketConnection,
    WebSocketState,
)

HYPOTHESIS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def upgrade_request(
    client: WSConnection, subprotocols: list[str] | None = None, deflate: bool = True
) -> bytes:
    """The client's upgrade request bytes."""
    return client.send(
        we.Request(
            host="example.com",
            target="/chat?room=1",
            subprotocols=subprotocols or [],
            extensions=[PerMessageDeflate()] if deflate else [],
        )
    )


def parse_head(data: bytes) -> tuple[RequestHead, HTTPConnection]:
    """Parse an upgrade request with the core's HTTPConnection."""
    http = HTTPConnection()
    http.receive_data(data)
    head = http.next_event()
    assert isinstance(head, RequestHead)
    return head, http


def client_events(client: WSConnection, data: bytes) -> list[we.Event]:
    """Feed server bytes to the client; return its events."""
    client.receive_data(data)
    return list(client.events())


def handshake(
    *,
    subprotocols: list[str] | None = None,
    accept: str | None = None,
    deflate: bool = True,
    **server_options: object,
) -> tuple[WSConnection, WebSocketConnection, we.AcceptConnection]:
    """A completed handshake: (client, server, the client's AcceptConnection)."""
    client = WSConnection(ConnectionType.CLIENT)
    head, http = parse_head(upgrade_request(client, subprotocols, deflate))
    assert head.wants_upgrade_to == "websocket"
    assert http.next_event() == EndOfRequest()
    server = WebSocketConnection(**server_options)  # type: ignore[arg-type]
    server.start(head)
    assert server.state is WebSocketState.HANDSHAKE
    server.accept(accept)
    assert server.state is WebSocketState.OPEN
    server.receive_data(http.upgrade_data())
    (accepted,) = client_events(client, server.data_to_send())
    assert isinstance(accepted, we.AcceptConnection)
    return client, server, accepted


def send(client: WSConnection, server: WebSocketConnection, *events: we.Event) -> list[object]:
    """Send client events to the server; return the server's events."""
    server.receive_data(b"".join(client.send(event) for event in events))
    return list(server.events())


def masked_frame(first_byte: int, payload: bytes) -> bytes:
    """A client frame with the given first byte, masked with a key that changes the bytes."""
    return client_frame(first_byte, payload, mask=b"\x11\x22\x33\x44")


def close_code_sent(server: WebSocketConnection, client: WSConnection) -> int:
    """The code of the close frame the server has written (as the client reads it)."""
    events = client_events(client, server.data_to_send())
    closes = [e for e in events if isinstance(e, we.CloseConnection)]
    assert len(closes) == 1, events
    return closes[0].code


# -- handshake ------------------------------------------------------------------------------------


def test_handshake_with_subprotocol_and_deflate() -> None:
    """The client sees the chosen subprotocol and permessage-deflate in the 101."""
    _client, server, accepted = handshake(subprotocols=["chat", "superchat"], accept="superchat")
    assert accepted.subprotocol == "superchat"
    assert [ext.name for ext in accepted.extensions] == ["permessage-deflate"]
    assert server.offered_subprotocols == ["chat", "superchat"]
    assert server.extensions == ["permessage-deflate"]


def test_handshake_without_subprotocol() -> None:
    """accept() without a subprotocol sends none."""
    _client, _server, accepted = handshake(subprotocols=["chat"])
    assert accepted.subprotocol is None


def test_deflate_disabled_on_the_server() -> None:
    """permessage_deflate=False declines the extension the client offers."""
    _client, server, accepted = handshake(permessage_deflate=False)
    assert accepted.extensions == []
    assert server.extensions == []


def test_deflate_not_offered() -> None:
    """Without an offer from the client, no extension is negotiated."""
    _client, server, accepted = handshake(deflate=False)
    assert accepted.extensions == []
    assert server.extensions == []


def test_101_response_bytes() -> None:
    """The 101 carries Upgrade, Connection and the RFC 6455 Sec-WebSocket-Accept."""
    client = WSConnection(ConnectionType.CLIENT)
    data = upgrade_request(client, deflate=False)
    data = data.replace(data.split(b"Sec-WebSocket-Key: ")[1].split(b"\r\n")[0], KEY)
    head, _ = parse_head(data)
    server = WebSocketConnection()
    server.start(head)
    server.accept()
    response = server.data_to_send()
    assert response.startswith(b"HTTP/1.1 101 ")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in response
    assert b"sec-websocket-extensions" not in response.lower()


def test_frames_that_arrive_with_the_handshake_are_kept() -> None:
    """Frames sent right behind the upgrade request reach the WebSocket via upgrade_data()."""
    client = WSConnection(ConnectionType.CLIENT)
    request = upgrade_request(client, deflate=False)
    # wsproto's client cannot frame before the 101, so frame the first message by hand
    head, http = parse_head(request + masked_frame(0x81, b"early"))
    assert http.next_event() == EndOfRequest()
    server = WebSocketConnection()
    server.start(head)
    server.accept()
    server.receive_data(http.upgrade_data())
    assert server.events() == [Message("early")]


def _handshake_error(data: bytes) -> RemoteProtocolError:
    head, _ = parse_head(data)
    with pytest.raises(RemoteProtocolError) as info:
        WebSocketConnection().start(head)
    return info.value


def test_unsupported_version_is_426_with_version_header() -> None:
    """Sec-WebSocket-Version: 8 is refused with 426 and Sec-WebSocket-Version: 13."""
    data = upgrade_request(WSConnection(ConnectionType.CLIENT))
    data = data.replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8")
    error = _handshake_error(data)
    assert error.status_hint == 426
    assert (b"sec-websocket-version", b"13") in [(k.lower(), v) for k, v in error.headers]


def test_missing_key_is_400() -> None:
    """An upgrade request without Sec-WebSocket-Key is refused with 400."""
    data = upgrade_request(WSConnection(ConnectionType.CLIENT))
    lines = [line for line in data.split(b"\r\n") if not line.startswith(b"Sec-WebSocket-Key")]
    error = _handshake_error(b"\r\n".join(lines))
    assert error.status_hint == 400


def test_http_10_upgrade_without_host_is_400() -> None:
    """An HTTP/1.0 upgrade request without Host is a RemoteProtocolError (400), not h11's error."""
    data = (
        b"GET /chat HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    error = _handshake_error(data)
    assert error.status_hint == 400


def test_accept_unoffered_subprotocol_is_local_error() -> None:
    """Accepting a subprotocol the client did not offer is the caller's error."""
    head, _ = parse_head(upgrade_request(WSConnection(ConnectionType.CLIENT), ["chat"]))
    server = WebSocketConnection()
    server.start(head)
    with pytest.raises(LocalProtocolError):
        server.accept("superchat")
    assert server.state is WebSocketState.HANDSHAKE


def test_accept_twice_is_local_error() -> None:
    """A WebSocket is accepted once."""
    _client, server, _ = handshake()
    with pytest.raises(LocalProtocolError):
        server.accept()


# -- messages -------------------------------------------------------------------------------------


@pytest.mark.parametrize("deflate", [True, False])
def test_text_and_binary_from_the_client(deflate: bool) -> None:
    """Text arrives as str and binary as bytes, compressed or not."""
    client, server, _ = handshake(deflate=deflate)
    events = send(client, server, we.TextMessage("h\u00e9llo " * 50), we.BytesMessage(b"\x00\xff"))
    assert events == [Message("h\u00e9llo " * 50), Message(b"\x00\xff")]


@pytest.mark.parametrize("deflate", [True, False])
def test_text_and_binary_to_the_client(deflate: bool) -> None:
    """send_message frames str as text and bytes as binary for the client."""
    client, server, _ = handshake(deflate=deflate)
    server.send_message("h\u00e9llo " * 50)
    server.send_message(b"\x00\xff")
    events = client_events(client, server.data_to_send())
    assert [(type(e), e.data) for e in events] == [
        (we.TextMessage, "h\u00e9llo " * 50),
        (we.BytesMessage, b"\x00\xff"),
    ]


def test_fragmented_message_is_assembled() -> None:
    """Fragments sent with message_finished=False come out as one Message."""
    client, server, _ = handshake()
    events = send(
        client,
        server,
        we.TextMessage("hel", message_finished=False),
        we.TextMessage("lo ", message_finished=False),
        we.TextMessage("world", message_finished=True),
        we.BytesMessage(b"ab", message_finished=False),
        we.BytesMessage(b"cd", message_finished=True),
    )
    assert events == [Message("hello world"), Message(b"abcd")]


def test_message_fed_byte_by_byte() -> None:
    """A message whose bytes arrive one at a time is reported once, whole."""
    client, server, _ = handshake(permessage_deflate=False)
    data = client.send(we.TextMessage("x" * 300)) + client.send(we.TextMessage("y"))
    events: list[object] = []
    for i in range(len(data)):
        server.receive_data(data[i : i + 1])
        events += server.events()
    assert events == [Message("x" * 300), Message("y")]


def test_message_at_the_limit_is_accepted() -> None:
    """A message of exactly max_message_bytes is delivered."""
    client, server, _ = handshake(max_message_bytes=10)
    assert send(client, server, we.BytesMessage(b"x" * 10)) == [Message(b"x" * 10)]


@pytest.mark.parametrize(
    "messages",
    [
        [we.BytesMessage(b"x" * 11)],
        [we.TextMessage("\u00e9" * 6)],  # 6 characters, 12 UTF-8 bytes
        [we.BytesMessage(b"x" * 6, message_finished=False), we.BytesMessage(b"x" * 6)],
    ],
    ids=["binary", "utf8-text", "fragments"],
)
def test_message_over_the_limit_closes_1009(messages: list[we.Event]) -> None:
    """A message over max_message_bytes ends the WebSocket with close 1009, sent by us."""
    client, server, _ = handshake(max_message_bytes=10)
    assert send(client, server, *messages) == [Closed(1009, "message too big", by_peer=False)]
    assert server.state is WebSocketState.CLOSED
    assert server.close_code == 1009
    assert close_code_sent(server, client) == 1009


def test_ping_is_answered_with_a_pong() -> None:
    """A ping is reported, and its pong is already waiting in data_to_send."""
    client, server, _ = handshake()
    assert not server.has_data_to_send
    assert send(client, server, we.Ping(b"are you there")) == [Ping(b"are you there")]
    assert server.has_data_to_send  # (a broadcast frame must not overtake it)
    assert client_events(client, server.data_to_send()) == [we.Pong(b"are you there")]
    assert not server.has_data_to_send


def test_send_ping() -> None:
    """send_ping sends a ping frame to the client."""
    client, server, _ = handshake()
    server.send_ping(b"p")
    assert client_events(client, server.data_to_send()) == [we.Ping(b"p")]


# -- closing --------------------------------------------------------------------------------------


def test_client_close_is_answered() -> None:
    """A client close is reported with by_peer=True and the reply is already buffered."""
    client, server, _ = handshake()
    events = send(client, server, we.CloseConnection(1000, "bye"))
    assert events == [Closed(1000, "bye", by_peer=True)]
    assert server.state is WebSocketState.CLOSED
    assert (server.close_code, server.close_reason) == (1000, "bye")
    assert close_code_sent(server, client) == 1000
    assert client.state is ConnectionState.CLOSED


def test_server_close_handshake() -> None:
    """close(1001) sends a close; the client's reply completes it: state CLOSED."""
    client, server, _ = handshake()
    server.close(1001, "going away")
    assert server.state is WebSocketState.CLOSING
    (close,) = client_events(client, server.data_to_send())
    assert isinstance(close, we.CloseConnection)
    assert (close.code, close.reason) == (1001, "going away")
    server.receive_data(client.send(close.response()))
    (closed,) = server.events()
    assert isinstance(closed, Closed)
    assert closed.code == 1001
    assert server.state is WebSocketState.CLOSED
    assert server.data_to_send() == b""
    server.close()  # a no-op once closed
    assert server.data_to_send() == b""


def test_ping_while_closing_is_not_answered() -> None:
    """A ping that crosses our close is reported, not answered (no pong after a close)."""
    client, server, _ = handshake()
    ping = client.send(we.Ping(b"late"))  # sent before the client sees our close
    server.close(1001)
    server.data_to_send()
    server.receive_data(ping)
    assert server.events() == [Ping(b"late")]
    assert server.data_to_send() == b""
    assert server.state is WebSocketState.CLOSING


def test_message_while_closing_is_delivered() -> None:
    """A message that crosses our close is still delivered."""
    client, server, _ = handshake()
    message = client.send(we.TextMessage("late"))
    server.close(1001)
    server.receive_data(message)
    assert server.events() == [Message("late")]


@pytest.mark.parametrize("after", ["own-close", "peer-close", "failure"])
def test_send_after_close_is_local_error(after: str) -> None:
    """send_message on a closing or closed WebSocket is the caller's error."""
    client, server, _ = handshake()
    if after == "own-close":
        server.close()
    elif after == "peer-close":
        send(client, server, we.CloseConnection(1000))
    else:
        server.receive_data(b"\x81\x05hello")
        server.events()
    with pytest.raises(LocalProtocolError):
        server.send_message("too late")


def test_receive_eof_is_abnormal_closure() -> None:
    """TCP EOF without a close frame sets close code 1006 and state CLOSED."""
    _client, server, _ = handshake()
    server.receive_eof()
    assert server.close_code == 1006
    assert server.state is WebSocketState.CLOSED
    assert server.data_to_send() == b""


def test_bytes_after_closed_are_ignored() -> None:
    """Once closed, further bytes are dropped without error."""
    client, server, _ = handshake()
    send(client, server, we.CloseConnection(1000))
    server.receive_data(b"\x81\x05hello")
    assert server.events() == []


# -- protocol errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x81\x05hello", 1002),  # an unmasked client frame
        (masked_frame(0xB1, b"hello"), 1002),  # RSV2 and RSV3 set, no extension for them
        (masked_frame(0x83, b"hello"), 1002),  # reserved opcode 3
        (masked_frame(0x09, b"ping"), 1002),  # a fragmented control frame
        (masked_frame(0x80, b"cont"), 1002),  # a continuation with nothing to continue
        (masked_frame(0x81, b"\xff\xfe"), 1007),  # invalid UTF-8 in a text message
        (masked_frame(0x88, b"\x03\xe8\xff"), 1007),  # invalid UTF-8 in a close reason
        (masked_frame(0x88, b"\x03\xe7"), 1002),  # close code 999
    ],
    ids=[
        "unmasked",
        "rsv-bits",
        "opcode",
        "fragmented-ping",
        "stray-continuation",
        "text-utf8",
        "close-reason-utf8",
        "close-code",
    ],
)
def test_invalid_frame_is_closed_by_us(frame: bytes, code: int) -> None:
    """A frame wsproto cannot accept ends the WebSocket: Closed(by_peer=False) and a close sent."""
    client, server, _ = handshake()
    server.receive_data(frame)
    (closed,) = server.events()
    assert isinstance(closed, Closed)
    assert (closed.code, closed.by_peer) == (code, False)
    assert server.state is WebSocketState.CLOSED
    assert server.close_code == code
    assert close_code_sent(server, client) == code


def test_invalid_utf8_split_across_fragments_is_1007() -> None:
    """UTF-8 validity is checked across fragments: a bad continuation is 1007."""
    _client, server, _ = handshake(permessage_deflate=False)
    server.receive_data(masked_frame(0x01, b"\xc3") + masked_frame(0x80, b"\x28"))
    (closed,) = server.events()
    assert isinstance(closed, Closed)
    assert (closed.code, closed.by_peer) == (1007, False)


def test_invalid_frame_while_closing_is_not_by_peer() -> None:
    """A broken frame after our close is reported as our failure, not as the peer's close."""
    _client, server, _ = handshake()
    server.close(1001)
    server.data_to_send()
    server.receive_data(b"\x81\x05hello")
    (closed,) = server.events()
    assert isinstance(closed, Closed)
    assert (closed.code, closed.by_peer) == (1002, False)
    assert server.state is WebSocketState.CLOSED
    assert server.data_to_send() == b""  # our close is already out


# -- property -------------------------------------------------------------------------------------


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


_frames = st.sampled_from(
    [
        masked_frame(0x81, b"hello"),
        masked_frame(0x82, b"\x00\x01"),
        masked_frame(0x01, b"frag"),
        masked_frame(0x80, b"ment"),
        masked_frame(0x00, b"x"),
        masked_frame(0x89, b"ping"),
        masked_frame(0x8A, b"pong"),
        masked_frame(0x88, b"\x03\xe8bye"),
        masked_frame(0x88, b""),
        masked_frame(0xC1, b"\xcaH\xcd\xc9\xc9\x07\x00"),  # RSV1: "hello", deflated
        masked_frame(0xC1, b"not deflate"),
        masked_frame(0x81, b"\xed\xa0\x80"),
        b"\x81\x05hello",
        b"\x82\xfe\x00\x05",
        b"\x82\xff" + b"\x00" * 8,
    ]
)
ws_bytes = st.lists(_frames | st.binary(max_size=12), max_size=12).map(b"".join)


@HYPOTHESIS
@given(
    data=ws_bytes,
    cuts=st.lists(st.integers(0, 200), max_size=6),
    close_first=st.booleans(),
    deflate=st.booleans(),
    eof=st.booleans(),
)
def test_arbitrary_bytes_yield_events_or_core_errors(
    data: bytes, cuts: list[int], close_first: bool, deflate: bool, eof: bool
) -> None:
    """Whatever bytes the client sends, in any pieces, the core yields its events or errors."""
    _client, server, _ = handshake(max_message_bytes=64, permessage_deflate=deflate)
    if close_first:
        server.close(1001)
    try:
        for piece in _split(data, cuts):
            server.receive_data(piece)
            for event in server.events():
                assert isinstance(event, Message | Ping | Pong | Closed)
            server.data_to_send()
        if eof:
            server.receive_eof()
            for event in server.events():
                assert isinstance(event, Message | Ping | Pong | Closed)
    except (LocalProtocolError, RemoteProtocolError):
        pass


@HYPOTHESIS
@given(
    data=ws_bytes,
    cuts=st.lists(st.integers(0, 200), max_size=6),
    close_first=st.booleans(),
    eof=st.booleans(),
)
def test_peer_bytes_never_raise(data: bytes, cuts: list[int], close_first: bool, eof: bool) -> None:
    """After the handshake, the peer's bytes alone never make the core raise: it closes instead."""
    _client, server, _ = handshake(max_message_bytes=64)
    if close_first:
        server.close(1001)
    closed = False
    for piece in _split(data, cuts):
        server.receive_data(piece)
        for event in server.events():
            assert not closed, "an event after Closed"
            closed = isinstance(event, Closed)
        server.data_to_send()
    if eof:
        server.receive_eof()
        server.events()
    if closed or eof:
        assert server.state is WebSocketState.CLOSED
        assert server.close_code is not None


def test_pong_is_reported() -> None:
    """A pong from the client is reported as a Pong event (keepalive liveness)."""
    client, server, _ = handshake()
    assert send(client, server, we.Pong(b"alive")) == [Pong(b"alive")]


# -- hardening: bounded inflation, fragment count, assembly memory --------------------------------

MiB = 1024 * 1024


def deflate(pieces: Iterator[bytes] | list[bytes]) -> bytes:
    """A permessage-deflate payload: raw deflate, sync-flushed, its 00 00 ff ff tail removed."""
    compressor = zlib.compressobj(wbits=-15)
    out = [compressor.compress(piece) for piece in pieces]
    out.append(compressor.flush(zlib.Z_SYNC_FLUSH))
    data = b"".join(out)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


def fragments(payload: bytes, count: int, opcode: int = 0x2, rsv1: bool = True) -> bytes:
    """``payload`` cut into ``count`` frames of one message (RSV1 on the first if ``rsv1``)."""
    step = -(-len(payload) // count)
    pieces = [payload[i * step : (i + 1) * step] for i in range(count)]
    frames = []
    for i, piece in enumerate(pieces):
        first = (opcode | (0x40 if rsv1 else 0)) if i == 0 else 0x00
        frames.append(client_frame(first | (0x80 if i == count - 1 else 0), piece))
    return b"".join(frames)


@pytest.fixture(scope="module")
def zip_bomb() -> bytes:
    """128 MiB of zeros as a permessage-deflate payload: about 127 KiB."""
    chunk = bytes(MiB)
    data = deflate(chunk for _ in range(128))
    assert len(data) < 140 * 1024
    return data


def peak_memory(run: Callable[[], object]) -> tuple[object, int]:
    """``run()``'s result and the most memory it held at once (tracemalloc), in bytes."""
    tracemalloc.start()
    try:
        result = run()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("cut", ["one-frame", "fragments", "small-reads"])
def test_deflate_bomb_is_refused_in_bounded_memory(zip_bomb: bytes, cut: str) -> None:
    """128 MiB of zeros, sent as ~127 KiB of deflate, ends in close 1009 sent by us, and the
    core never holds more than a small multiple of max_message_bytes (1 MiB): wsproto's own
    extension would inflate all 128 MiB before the size check."""
    client, server, _ = handshake()
    assert server.extensions == ["permessage-deflate"]
    data = fragments(zip_bomb, 8) if cut == "fragments" else client_frame(0xC2, zip_bomb)

    def run() -> list[object]:
        if cut == "small-reads":
            events: list[object] = []
            for i in range(0, len(data), 4096):
                server.receive_data(data[i : i + 4096])
                events += server.events()
            return events
        server.receive_data(data)
        return list(server.events())

    events, peak = peak_memory(run)
    assert events == [Closed(1009, "message too big", by_peer=False)]
    assert peak < 4 * MiB, f"{peak / MiB:.1f} MiB held for a 1 MiB limit"
    assert server.state is WebSocketState.CLOSED
    assert close_code_sent(server, client) == 1009


@pytest.mark.parametrize("frame_count", [1, 5])
def test_compressed_message_at_the_limit_is_accepted(frame_count: int) -> None:
    """A compressed message that inflates to exactly max_message_bytes is delivered (whole or
    in fragments), and the count starts again for the next message."""
    limit = 64 * 1024
    _client, server, _ = handshake(max_message_bytes=limit)
    payload = deflate([bytes(limit)])
    server.receive_data(fragments(payload, frame_count) * 2)
    assert server.events() == [Message(bytes(limit)), Message(bytes(limit))]


@pytest.mark.parametrize("frame_count", [1, 5])
def test_compressed_message_one_byte_over_the_limit_is_1009(frame_count: int) -> None:
    """One byte more than max_message_bytes after inflation is refused with 1009."""
    limit = 64 * 1024
    client, server, _ = handshake(max_message_bytes=limit)
    server.receive_data(fragments(deflate([bytes(limit + 1)]), frame_count))
    assert server.events() == [Closed(1009, "message too big", by_peer=False)]
    assert close_code_sent(server, client) == 1009


def test_ping_inside_a_fragmented_compressed_message() -> None:
    """RFC 6455 5.4: a control frame may come between the fragments of a message.  wsproto's
    own permessage-deflate then forgets that the message is compressed (and fails with 1007)."""
    client, server, _ = handshake()
    events = send(
        client,
        server,
        we.TextMessage("hello " * 20, message_finished=False),
        we.Ping(b"p"),
        we.TextMessage("world " * 20, message_finished=True),
        we.TextMessage("next"),
    )
    assert events == [Ping(b"p"), Message("hello " * 20 + "world " * 20), Message("next")]


def test_message_after_a_final_deflate_block_still_inflates() -> None:
    """A message ended with a BFINAL block (RFC 7692 7.2.3.3) ends the deflate stream: the
    next message starts a new one instead of vanishing into zlib's unused_data."""
    _client, server, _ = handshake()
    compressor = zlib.compressobj(wbits=-15)
    final = compressor.compress(b"first") + compressor.flush(zlib.Z_FINISH)
    server.receive_data(client_frame(0xC1, final) + client_frame(0xC1, deflate([b"second"])))
    assert server.events() == [Message("first"), Message("second")]


@pytest.mark.parametrize("deflated", [False, True])
def test_message_of_max_fragments_frames_is_accepted(deflated: bool) -> None:
    """A message cut into exactly max_fragments frames (two of them empty) is delivered."""
    _client, server, _ = handshake(max_fragments=4)
    payload = deflate([b"abcdefgh"]) if deflated else b"abcdefgh"
    half = len(payload) // 2
    first = 0x41 if deflated else 0x01
    server.receive_data(
        client_frame(first, payload[:half])
        + client_frame(0x00, b"") * 2
        + client_frame(0x80, payload[half:])
    )
    assert server.events() == [Message("abcdefgh")]


@pytest.mark.parametrize("deflated", [False, True])
def test_too_many_fragments_is_1009(deflated: bool) -> None:
    """One frame more than max_fragments ends the WebSocket with 1009 "too many fragments",
    even when the frames are empty (they still cost an event each)."""
    client, server, _ = handshake(max_fragments=4)
    first = 0x41 if deflated else 0x01
    frames = client_frame(first, deflate([b"a"]) if deflated else b"a")
    frames += client_frame(0x00, b"") * 3 + client_frame(0x80, b"")
    server.receive_data(frames)
    assert server.events() == [Closed(1009, "too many fragments", by_peer=False)]
    assert close_code_sent(server, client) == 1009


def test_trickled_frame_is_one_fragment_in_bounded_memory() -> None:
    """A frame fed one byte per read gives wsproto one event per byte: it still counts as one
    frame, and the message is assembled in O(max_message_bytes) memory (not one object per
    byte, which would be ~40 bytes each)."""
    limit = 16 * 1024
    client, server, _ = handshake(
        permessage_deflate=False, max_message_bytes=limit, max_fragments=1
    )
    data = client.send(we.BytesMessage(b"x" * limit))

    def run() -> list[object]:
        events: list[object] = []
        for i in range(len(data)):
            server.receive_data(data[i : i + 1])
            events += server.events()
        return events

    events, peak = peak_memory(run)
    assert events == [Message(b"x" * limit)]
    assert peak < 4 * limit, f"{peak} bytes held for a {limit}-byte message"


def test_trickled_text_fragments_are_joined() -> None:
    """Text cut mid-character across frames and reads is joined into the right string."""
    _client, server, _ = handshake(permessage_deflate=False)
    text = "h\u00e9llo \U0001f600 w\u00f6rld"
    encoded = text.encode()
    frames = fragments(encoded, 6, opcode=0x1, rsv1=False)
    events: list[object] = []
    for i in range(0, len(frames), 3):
        server.receive_data(frames[i : i + 3])
        events += server.events()
    assert events == [Message(text)]


def test_no_event_after_a_failed_message() -> None:
    """Frames buffered behind a message the core refused are never reported: Closed is the
    last event (found by tests/core/test_fuzz.py: wsproto still holds them and went on)."""
    client, server, _ = handshake(max_message_bytes=10)
    server.receive_data(
        client.send(we.BytesMessage(b"x" * 11)) + client.send(we.TextMessage("after"))
    )
    assert server.events() == [Closed(1009, "message too big", by_peer=False)]
    assert server.events() == []
    server.receive_eof()
    assert server.events() == []


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; client_max_window_bits=x",
        "permessage-deflate; server_max_window_bits=",
    ],
)
def test_an_offer_that_does_not_parse_is_declined(offer: str) -> None:
    """An offer with a parameter that is no number is declined (no extension, no error): the
    WebSocket opens uncompressed instead of the handshake failing with a ValueError."""
    head, _ = parse_head(
        b"GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: " + offer.encode() + b"\r\n\r\n"
    )
    server = WebSocketConnection()
    server.start(head)
    server.accept()
    assert server.state is WebSocketState.OPEN
    assert server.extensions == []
    response = server.data_to_send()
    assert response.startswith(b"HTTP/1.1 101 ")
    assert b"sec-websocket-extensions" not in response.lower()


def test_compressed_bytes_that_inflate_to_nothing_are_bounded_too() -> None:
    """Empty stored blocks inflate to nothing: a message made of them is refused with 1009
    once its compressed bytes pass the limit and its slack, instead of streaming forever."""
    client, server, _ = handshake(max_message_bytes=64 * 1024)
    empty_block = b"\x00\x00\x00\xff\xff"  # BFINAL 0, stored, length 0
    server.receive_data(client_frame(0x42, empty_block * (80 * 1024 // 5)))
    (closed,) = server.events()
    assert closed == Closed(1009, "message too big", by_peer=False)
    assert close_code_sent(server, client) == 1009


def test_bytes_after_the_final_deflate_block_are_invalid() -> None:
    """After a block with BFINAL set the message may hold one byte more (an empty block's
    0x00); more is not deflate data at all: close 1007, not bytes kept in zlib."""
    compressor = zlib.compressobj(wbits=-15)
    final = compressor.compress(b"hi") + compressor.flush(zlib.Z_FINISH)
    client, server, _ = handshake()
    server.receive_data(client_frame(0xC1, final + b"\x00"))
    assert server.events() == [Message("hi")]
    server.receive_data(client_frame(0xC1, final + b"junk"))
    (closed,) = server.events()
    assert (closed.code, closed.by_peer) == (1007, False)
    assert close_code_sent(server, client) == 1007
