"""permessage-deflate (RFC 7692) with inflation bounded as it happens.

wsproto's :class:`~wsproto.extensions.PerMessageDeflate` inflates each frame's payload with
``decompressor.decompress(data)`` and no ``max_length``: a message of 128 MiB of zeros, sent
as about 127 KiB of deflate data, becomes 128 MiB in memory before the WebSocket core sees a
single byte of it and can compare the message's size with its limit.  This subclass inflates
at most one byte more than the message may still grow, keeps count per message, and answers
``CloseReason.MESSAGE_TOO_BIG`` as soon as the limit is passed.  wsproto's frame decoder turns
that answer into a ``ParseFailed`` and then a ``CloseConnection(1009)`` event, which
:class:`~rawstream.core.websocket.WebSocketConnection` sends to the peer as our close.

The compressed bytes are bounded too: deflate never needs much more than the inflated size
(a stored block costs 5 bytes per 64 KiB), so a message whose compressed payload passes the
limit by more than that slack is refused with 1009 as well.  Without it, bytes that inflate
to nothing (empty blocks) could stream in one endless frame, never reaching a limit.

An offer whose parameters do not parse (``client_max_window_bits=x``) is declined, so the
connection goes on uncompressed; the parent class would raise ``ValueError`` out of the
handshake.

More departures from the parent class, about state kept across frames:

* A control frame (ping, pong, close) in the middle of a fragmented compressed message leaves
  the message's state alone.  RFC 6455 section 5.4 allows such a frame; wsproto's parent
  class forgets that the message is compressed when the control frame ends, so the rest of
  the message is taken as uncompressed and the connection fails (1007).
* Once the deflate stream has ended (a block with BFINAL set), the message may carry one
  byte more (the 0x00 of an empty block, RFC 7692 section 7.2.3.5); anything beyond is
  invalid (1007) rather than fed to zlib, which would keep all of it in ``unused_data``.  The
  next compressed message starts a fresh stream.

The extension's name (``permessage-deflate``) and its negotiation are the parent's, unchanged.

This class reads and writes the parent's private ``_decompressor``, ``_inbound_compressed`` and
``_inbound_is_compressible``, so pyproject.toml pins wsproto to the releases checked for them
(``>=1.2,<1.4``) and ``tests/core/test_wsproto_private.py`` fails, naming each, if they change.
"""

from __future__ import annotations

import zlib

from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits

__all__ = ["BoundedPerMessageDeflate"]

#: The four bytes RFC 7692 (section 7.2.2) appends to a message's payload before inflating it.
_SYNC_TAIL = b"\x00\x00\xff\xff"


def compressed_slack(max_message_bytes: int) -> int:
    """How far a message's compressed payload may exceed its inflated limit: deflate's worst
    case is stored blocks, 5 bytes of header per 65535 of data, plus a few bytes of framing;
    this allows a sixteenth more, so no real compressor comes near it."""
    return max_message_bytes // 16 + 1024


class BoundedPerMessageDeflate(PerMessageDeflate):
    """permessage-deflate whose inflated message size is bounded while it inflates.

    Args:
        max_message_bytes: the most bytes one message may inflate to; beyond it the frame
            decoder fails with ``MESSAGE_TOO_BIG`` (close 1009).
        client_no_context_takeover, client_max_window_bits, server_no_context_takeover,
        server_max_window_bits: as for wsproto's ``PerMessageDeflate``.
    """

    def __init__(
        self,
        *,
        max_message_bytes: int,
        client_no_context_takeover: bool = False,
        client_max_window_bits: int | None = None,
        server_no_context_takeover: bool = False,
        server_max_window_bits: int | None = None,
    ) -> None:
        super().__init__(
            client_no_context_takeover=client_no_context_takeover,
            client_max_window_bits=client_max_window_bits,
            server_no_context_takeover=server_no_context_takeover,
            server_max_window_bits=server_max_window_bits,
        )
        self.max_message_bytes = max_message_bytes
        self._max_compressed = max_message_bytes + compressed_slack(max_message_bytes)
        self._inflated = 0  # bytes the current compressed message has inflated to so far
        self._compressed = 0  # compressed bytes of the current message received so far
        self._trailing = 0  # bytes of the current message after its deflate stream ended

    def accept(self, offer: str) -> bool | str | None:
        """Accept a client's offer as the parent does, declining one whose parameters do not
        parse (the parent raises ``ValueError`` for ``client_max_window_bits=x``)."""
        try:
            return super().accept(offer)
        except ValueError:
            return None

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        """Check a frame's header; a control frame leaves the current message's state alone."""
        if opcode.iscontrol():
            if rsv.rsv1:
                return CloseReason.PROTOCOL_ERROR
            self._inbound_is_compressible = False
            return RsvBits(True, False, False)
        return super().frame_inbound_header(proto, opcode, rsv, payload_length)

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        """Inflate a piece of a frame's payload, no further than the message's limit allows."""
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        self._compressed += len(data)
        if self._compressed > self._max_compressed:
            self._decompressor = None
            return CloseReason.MESSAGE_TOO_BIG
        return self._inflate(bytes(data))

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        """At the end of a compressed message, inflate its sync tail (bounded too) and reset."""
        if not fin or not self._inbound_is_compressible:
            return None  # a frame within a message, or a control frame (possibly inside one)
        compressed = self._inbound_compressed
        self._inbound_compressed = None
        self._compressed = 0
        if not compressed:
            self._inflated = 0
            return None
        assert self._decompressor is not None
        data = b"" if self._decompressor.eof else self._inflate(_SYNC_TAIL)
        if isinstance(data, CloseReason):
            return data
        decompressor = self._decompressor
        assert decompressor is not None
        if proto.client:
            no_context_takeover = self.server_no_context_takeover
        else:
            no_context_takeover = self.client_no_context_takeover
        if no_context_takeover or decompressor.eof:
            self._decompressor = None  # the next message starts a new deflate stream
        self._inflated = self._trailing = 0
        return data

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        """``data`` inflated, or ``MESSAGE_TOO_BIG`` once the message would pass its limit.

        zlib is asked for one byte more than the message may still grow by: getting it (or
        leaving input unconsumed in ``unconsumed_tail``) proves the limit is passed, while at
        most ``limit + 1`` bytes were ever produced.  Below that, zlib consumed all its input
        and produced all the output it could, so nothing is left waiting for a flush.
        """
        decompressor = self._decompressor
        assert decompressor is not None
        if decompressor.eof:  # past the end of the deflate stream: nothing more can inflate
            return self._after_the_end(len(data))
        room = self.max_message_bytes - self._inflated
        try:
            out = decompressor.decompress(data, room + 1)  # (max_length 0 would mean no bound)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        if decompressor.eof and isinstance(
            self._after_the_end(len(decompressor.unused_data)), CloseReason
        ):
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(out)
        if len(out) > room or decompressor.unconsumed_tail:
            self._decompressor = None  # (the connection fails: free zlib's window now)
            return CloseReason.MESSAGE_TOO_BIG
        return out

    def _after_the_end(self, more: int) -> bytes | CloseReason:
        """Bytes after the deflate stream's final block: one (an empty block's 0x00) is
        tolerated, more are invalid."""
        self._trailing += more
        if self._trailing > 1:
            self._decompressor = None
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        return b""
