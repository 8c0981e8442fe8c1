"""The WebSocket fast path (rawstream.core.fastws) gives exactly what wsproto gives.

Two proofs, by hypothesis, against wsproto itself:

* a whole connection (small whole frames mostly, mixed with fragments, control frames, long
  and unmasked frames, invalid UTF-8, bytes that are no frame at all, and server sends between
  reads), fed in random pieces to a ``WebSocketConnection`` with the fast path and to one
  without it, gives the same events, the same close codes and states, and the same bytes out;
* a message it frames is byte for byte what wsproto's frame protocol writes for it.
"""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st
from wsproto.frame_protocol import FrameProtocol

from rawstream.core import HTTPConnection, RequestHead, WebSocketConnection
from rawstream.core.fastws import frame_message, read_small_frames

from .test_fuzz import MAX_FRAGMENTS, cuts_st, fuzz, split, ws_frame

SMALL_LIMIT = 100  # a message limit under 126 bytes: the fast path must leave bigger to wsproto


@st.composite
def small_frame(draw: st.DrawFn, wild: bool = True) -> bytes:
    """A frame of the kind the fast path reads: whole, masked, under 126 bytes, text or binary
    (when ``wild``, sometimes text that is not UTF-8, or the mask bit or FIN clear)."""
    text = draw(st.booleans())
    if text:
        payload = draw(st.text(max_size=31)).encode()  # (at most 124 bytes)
        if wild and draw(st.integers(0, 9)) == 0:
            payload = payload[:124] + b"\xff"  # not UTF-8: wsproto answers 1007
    else:
        payload = draw(st.binary(max_size=125))
    fin = draw(st.sampled_from([0x80] * 9 + [0])) if wild else 0x80
    masked = draw(st.sampled_from([0x80] * 19 + [0])) if wild else 0x80
    key = draw(st.binary(min_size=4, max_size=4)) if masked else b""
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if masked else payload
    return bytes([fin | (1 if text else 2), masked | len(payload)]) + key + body


def control_frame(opcode: int, payload: bytes) -> bytes:
    key = b"\x11\x22\x33\x44"
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + key + body


pieces_st = st.lists(
    small_frame()
    | small_frame()
    | small_frame()
    | ws_frame()
    | st.just(control_frame(0x9, b"ping"))
    | st.just(control_frame(0x8, struct.pack("!H", 1000)))
    | st.binary(min_size=1, max_size=12),
    max_size=14,
)


def opened(*, fast_path: bool, limit: int) -> WebSocketConnection:
    http = HTTPConnection()
    http.receive_data(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = http.next_event()
    assert isinstance(head, RequestHead)
    server = WebSocketConnection(
        max_message_bytes=limit,
        max_fragments=MAX_FRAGMENTS,
        permessage_deflate=False,
        fast_path=fast_path,
    )
    server.start(head)
    server.accept()
    server.data_to_send()
    return server


def run(frames: list[bytes], cuts: list[int], sends: list[bool], limit: int, fast: bool) -> list:
    """Everything observable, piece by piece: events, state, close code, bytes written."""
    server = opened(fast_path=fast, limit=limit)
    seen: list = []
    for i, piece in enumerate(split(b"".join(frames), cuts)):
        server.receive_data(piece)
        seen.append(server.events())
        if i < len(sends) and server.state.value == "open":
            server.send_message("reply" if sends[i] else b"\x00" * 130)
        seen.append((server.state, server.close_code, server.close_reason))
        seen.append(server.data_to_send())
    server.receive_eof()
    seen.append((server.events(), server.state, server.close_code))
    return seen


@fuzz(600)
@given(
    frames=pieces_st,
    cuts=st.just([]) | st.lists(st.integers(0, 300), max_size=3) | cuts_st,
    sends=st.lists(st.booleans(), max_size=8),
    limit=st.sampled_from([SMALL_LIMIT, 1 << 16]),
)
def test_a_connection_is_the_same_with_and_without_the_fast_path(
    frames: list[bytes], cuts: list[int], sends: list[bool], limit: int
) -> None:
    assert run(frames, cuts, sends, limit, fast=True) == run(frames, cuts, sends, limit, False)


@fuzz(300)
@given(frames=st.lists(small_frame(wild=False), max_size=12))
def test_small_frames_are_read_as_wsproto_reads_them(frames: list[bytes]) -> None:
    """Well-formed small frames only: the fast path reads every byte itself, and what it
    reads is wsproto's messages (the connection test proves the rest)."""
    data = b"".join(frames)
    messages: list[str | bytes] = []
    assert read_small_frames(data, 1 << 20, messages) == len(data)
    wsproto_server = FrameProtocol(client=False, extensions=[])
    wsproto_server.receive_bytes(data)
    theirs = [frame.payload for frame in wsproto_server.received_frames()]
    assert messages == theirs


@fuzz(300)
@given(
    data=st.text(max_size=300)
    | st.binary(max_size=300)
    | st.sampled_from([125, 126, 127, 0xFFFF, 0x10000]).map(bytes)
)
def test_a_frame_is_the_bytes_wsproto_writes(data: str | bytes) -> None:
    expected = FrameProtocol(client=False, extensions=[]).send_data(data, fin=True)
    assert frame_message(data) == bytes(expected)
