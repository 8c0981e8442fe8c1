"""The server side of one WebSocket, over wsproto (RFC 6455, RFC 7692).

The HTTP request that asks for the upgrade has already been parsed by
:class:`~rawstream.core.http.HTTPConnection`; :meth:`WebSocketConnection.start` hands its head
to wsproto, which validates the handshake.  A bad handshake raises
:class:`RemoteProtocolError` whose ``status_hint`` and ``headers`` are RFC 6455's answer
(426 with ``Sec-WebSocket-Version: 13`` for another version, 400 for a missing key); the
server writes that answer over HTTP.  :meth:`accept` produces the 101 response (wsproto
writes it), and then the bytes that followed the request head (``http.upgrade_data()``) go
into :meth:`receive_data`: that is the whole handoff from h11 to wsproto.

After the handshake, wsproto frames and unframes; this module adds:

* message assembly: fragments are joined into one :class:`Message`, up to
  ``max_message_bytes`` (UTF-8 bytes for text) and ``max_fragments`` frames; beyond either
  the core sends close 1009 and reports ``Closed(1009, by_peer=False)``.  Frames are counted
  where wsproto reports one finished (it splits a frame into as many events as the reads that
  brought it), and the pieces go into one ``bytearray``, so the memory a message takes is
  O(``max_message_bytes``) however finely the peer cuts it;
* bounded inflation: wsproto's permessage-deflate inflates each piece it gets with no bound, so a
  small compressed message (a "zip bomb": 127 KiB of deflate is 128 MiB of zeros) would be
  in memory before the size check above.  :mod:`rawstream.core.deflate` replaces the
  extension with a subclass that inflates at most one byte past ``max_message_bytes`` and
  makes wsproto fail the frame with 1009, which is then sent as our close like any other;
* protocol replies with no application code: a ping is answered with a pong, a close with a
  close, and a frame wsproto cannot parse with a close carrying wsproto's code (1002, 1007,
  1009) before the connection is dropped (wsproto itself would report it and send nothing);
* permessage-deflate, accepted when the client offers it and ``permessage_deflate`` is on
  (negotiated exactly as wsproto does; the subclass also accepts a ping in the middle of a
  fragmented compressed message, which wsproto's own extension mistakes for a broken one).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import h11
import wsproto
import wsproto.events as ws
from wsproto.extensions import Extension
from wsproto.frame_protocol import FrameProtocol
from wsproto.utilities import LocalProtocolError as WSLocalProtocolError
from wsproto.utilities import RemoteProtocolError as WSRemoteProtocolError

from .deflate import BoundedPerMessageDeflate
from .errors import LocalProtocolError, RemoteProtocolError
from .fastws import frame_message, read_small_frames
from .http import RequestHead
from .output import OutputBuffer

__all__ = [
    "Closed",
    "Message",
    "Ping",
    "Pong",
    "WebSocketConnection",
    "WebSocketEvent",
    "WebSocketState",
    "encode_message_frame",
    "payload_size",
]


class WebSocketState(Enum):
    """Where a WebSocket is in its life."""

    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSING = "closing"  # we sent a close and wait for the peer's
    CLOSED = "closed"  # both closes exchanged, or the connection is to be dropped


@dataclass(frozen=True, slots=True)
class Message:
    """A whole message: ``str`` for a text message, ``bytes`` for a binary one."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class Ping:
    """A ping arrived (already answered with a pong)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    """A pong arrived: the peer is alive (the answer to our ping, or unsolicited)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Closed:
    """The WebSocket is closed or closing, with the code and reason that ended it.

    ``by_peer`` is true when the client sent the close, false when the core closed the
    connection because the client broke the protocol or a limit.
    """

    code: int
    reason: str
    by_peer: bool


WebSocketEvent = Message | Ping | Pong | Closed


def payload_size(data: str | bytes | bytearray) -> int:
    """A message's size in bytes as sent (UTF-8 for text), without encoding ASCII text."""
    if isinstance(data, bytes | bytearray) or data.isascii():
        return len(data)
    return len(data.encode())


def encode_message_frame(data: str | bytes) -> bytes:
    """One whole server-to-client message as frame bytes: unmasked, unfragmented, uncompressed.

    A fresh wsproto frame protocol with no extensions holds no state between whole messages,
    so the frame is the same on every such connection (written here as wsproto writes it,
    :func:`~rawstream.core.fastws.frame_message`): a message broadcast to many WebSockets is
    framed once and the same bytes are written to each connection that negotiated no
    extension (:attr:`WebSocketConnection.sends_plain_frames`).
    """
    return frame_message(data)  # (wsproto's bytes: tests/core/test_fastws.py)


class WebSocketConnection:
    """One server-side WebSocket: handshake, message assembly, automatic replies.

    Args:
        max_message_bytes: largest message accepted after reassembly (and after inflation,
            counted as it inflates); close 1009 beyond.
        max_fragments: most frames one message may be cut into; close 1009 beyond.
        permessage_deflate: accept the permessage-deflate extension when offered.
        context_takeover: let the compressor refer back to earlier messages (better ratio).
            Without it every message is compressed on its own, so a queued message can be
            dropped without breaking the ones after it.
        fast_path: read small whole frames and write whole messages without wsproto when
            no extension is in use (:mod:`rawstream.core.fastws`; off only to compare).
    """

    def __init__(
        self,
        *,
        max_message_bytes: int = 1024 * 1024,
        max_fragments: int = 1024,
        permessage_deflate: bool = True,
        context_takeover: bool = True,
        fast_path: bool = True,
    ):
        self._ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        self._fast_path = fast_path
        self._fast: FrameProtocol | None = None  # wsproto's frames, once the fast path is on
        self._fast_messages: list[str | bytes] = []  # read by the fast path, not yet returned
        self._wsproto_fed = False  # wsproto got bytes it may not have reported on yet
        self._max_message_bytes = max_message_bytes
        self._max_fragments = max_fragments
        self._permessage_deflate = permessage_deflate
        self._context_takeover = context_takeover
        self._out = OutputBuffer()
        # The message being assembled: its UTF-8 or binary bytes so far (None until a second
        # piece arrives), its size and its finished frames.
        self._pending: bytearray | None = None
        self._message_bytes = 0
        self._message_frames = 0
        self._state = WebSocketState.HANDSHAKE
        self._offered_subprotocols: list[str] = []
        self._plain_frames = False
        self._closed_reported = False  # Closed was returned by events(): nothing may follow
        self.close_code: int | None = None
        self.close_reason: str = ""

    @property
    def state(self) -> WebSocketState:
        """The current state (only this class changes it)."""
        return self._state

    @property
    def offered_subprotocols(self) -> list[str]:
        """The subprotocols the client offered, in its order of preference."""
        return self._offered_subprotocols

    # -- handshake ---------------------------------------------------------------------------

    def start(self, head: RequestHead) -> None:
        """Validate the upgrade request.

        Raises:
            RemoteProtocolError: the handshake is invalid; answer over HTTP with its
                ``status_hint`` and ``headers``.
        """
        try:
            self._ws.initiate_upgrade_connection(list(head.headers), head.target)
            events = list(self._ws.events())
        except WSRemoteProtocolError as exc:
            hint = exc.event_hint
            status = getattr(hint, "status_code", 400)
            headers = tuple((bytes(k), bytes(v)) for k, v in getattr(hint, "headers", ()))
            raise RemoteProtocolError(str(exc), status_hint=status, headers=headers) from exc
        except h11.ProtocolError as exc:
            # wsproto re-sends the head as an HTTP/1.1 request through an h11 client, which
            # refuses what our parser accepted, e.g. an HTTP/1.0 request without Host.
            raise RemoteProtocolError(f"invalid upgrade request: {exc}", status_hint=400) from exc
        request = next(e for e in events if isinstance(e, ws.Request))
        self._offered_subprotocols = list(request.subprotocols)

    def accept(self, subprotocol: str | None = None) -> None:
        """Produce the 101 response, with ``subprotocol`` (one the client offered) if given."""
        if self._state is not WebSocketState.HANDSHAKE:
            raise LocalProtocolError(f"cannot accept a WebSocket in state {self._state.value}")
        if subprotocol is not None and subprotocol not in self._offered_subprotocols:
            raise LocalProtocolError(f"the client did not offer subprotocol {subprotocol!r}")
        extensions: list[Extension] = []
        if self._permessage_deflate:
            extensions.append(
                BoundedPerMessageDeflate(
                    max_message_bytes=self._max_message_bytes,
                    server_no_context_takeover=not self._context_takeover,
                )
            )
        self._send(ws.AcceptConnection(subprotocol=subprotocol, extensions=extensions))
        self._state = WebSocketState.OPEN
        self._plain_frames = not self.extensions  # fixed from here on: asked once, not per send
        if self._plain_frames and self._fast_path:
            connection = self._ws.connection
            assert connection is not None
            self._fast = connection._proto  # (wsproto has no public API for its parser state)

    @property
    def compresses_across_messages(self) -> bool:
        """Frames may depend on earlier ones (deflate with context takeover), so a queued
        frame must never be dropped.  True during the handshake if that could be negotiated."""
        if not (self._permessage_deflate and self._context_takeover):
            return False
        return self._state is WebSocketState.HANDSHAKE or "permessage-deflate" in self.extensions

    @property
    def sends_plain_frames(self) -> bool:
        """Open with no extension negotiated: a message's frame is the same bytes on every
        such connection, so :func:`encode_message_frame` output may be written directly."""
        return self._state is WebSocketState.OPEN and self._plain_frames

    @property
    def extensions(self) -> list[str]:
        """Names of the extensions in use (``permessage-deflate`` when negotiated)."""
        connection = self._ws.connection
        if connection is None:
            return []
        return [ext.name for ext in connection._proto.extensions]  # wsproto has no public API

    # -- input -------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the socket."""
        if self._state is WebSocketState.CLOSED:
            return
        if self._fast is not None and self._state is WebSocketState.OPEN and self._wsproto_idle():
            taken = read_small_frames(data, self._max_message_bytes, self._fast_messages)
            if taken == len(data):
                return
            data = data[taken:]  # wsproto takes over at the first frame not read
        self._wsproto_fed = True
        self._ws.receive_data(data)

    def _wsproto_idle(self) -> bool:
        """wsproto holds no byte, frame or message in progress (and we no piece of one): the
        next byte starts a frame, as the fast path needs."""
        proto = self._fast
        assert proto is not None
        decoder = proto._frame_decoder
        return (
            self._pending is None
            and decoder.header is None
            and len(decoder.buffer) == 0
            and proto._message_decoder.opcode is None
        )

    def receive_eof(self) -> None:
        """The client closed TCP; without a close frame that is abnormal closure (1006)."""
        if self._state is not WebSocketState.CLOSED:  # no close frame was received
            self._wsproto_fed = True
            self._ws.receive_data(None)
            self._state = WebSocketState.CLOSED
            self.close_code, self.close_reason = 1006, ""

    def events(self) -> list[WebSocketEvent]:
        """The events produced by the bytes fed so far (replies are already buffered).

        :class:`Closed` is the last event ever returned: when the core fails a message (too
        big, too many fragments), wsproto still holds the frames that came after it and
        would go on reporting them, so they are dropped here.
        """
        out: list[WebSocketEvent] = []
        if self._closed_reported:
            return out
        if self._fast_messages:  # they came before anything wsproto holds
            out.extend(map(Message, self._fast_messages))
            self._fast_messages.clear()
        if not self._wsproto_fed:  # (nothing new for wsproto to report: skip its parser)
            return out
        self._wsproto_fed = False
        for event in self._ws.events():
            if isinstance(event, ws.TextMessage | ws.BytesMessage):
                message = self._assemble(event)
                if isinstance(message, Closed):
                    out.append(message)
                    self._closed_reported = True
                    break
                if message is not None:
                    out.append(message)
            elif isinstance(event, ws.Ping):
                if self._ws.state is wsproto.connection.ConnectionState.OPEN:
                    self._send(event.response())  # no pong once our close is out
                out.append(Ping(bytes(event.payload)))
            elif isinstance(event, ws.Pong):
                out.append(Pong(bytes(event.payload)))
            elif isinstance(event, ws.CloseConnection):
                out.append(self._on_close(event))
                self._closed_reported = True
                break
        return out

    def _assemble(self, event: ws.TextMessage | ws.BytesMessage) -> Message | Closed | None:
        """Add a piece of a message; the whole message once its last piece is in.

        wsproto reports a frame in as many events as the reads that brought its bytes, so a
        peer sending one byte per TCP segment makes one event per byte: the pieces go into
        one ``bytearray`` (text as UTF-8, decoded once at the end), never into a list of a
        million small objects, so a message costs O(``max_message_bytes``) however it is cut.
        Frames are counted where wsproto says one finished, not per event.
        """
        data = event.data
        self._message_bytes += payload_size(data)
        if self._message_bytes > self._max_message_bytes:
            return self._fail(1009, "message too big")
        if event.frame_finished:
            self._message_frames += 1
        if event.message_finished:
            whole = self._pending
            if whole is None:  # the whole message came in one event: no copy
                message = Message(bytes(data) if isinstance(data, bytearray) else data)
            else:
                whole += data.encode() if isinstance(data, str) else data
                message = Message(whole.decode() if isinstance(data, str) else bytes(whole))
            self._reset_message()
            return message
        if self._message_frames >= self._max_fragments:  # and another frame must follow
            return self._fail(1009, "too many fragments")
        if self._pending is None:
            self._pending = bytearray()
        self._pending += data.encode() if isinstance(data, str) else data
        return None

    def _reset_message(self) -> None:
        self._pending = None
        self._message_bytes = self._message_frames = 0

    def _on_close(self, event: ws.CloseConnection) -> Closed:
        if self._ws.state in (
            wsproto.connection.ConnectionState.OPEN,
            wsproto.connection.ConnectionState.LOCAL_CLOSING,
        ):
            # wsproto reports a frame it could not parse as a close it "received" while its
            # state stays as it was (a real close moves OPEN on to REMOTE_CLOSING and
            # LOCAL_CLOSING on to CLOSED): it is ours to send, with wsproto's code, unless
            # our close is already out.
            if event.code == 1009:  # from BoundedPerMessageDeflate, as wsproto words it
                return self._fail(1009, "message too big")
            return self._fail(event.code, event.reason or "protocol error")
        if self._state is WebSocketState.OPEN:  # the peer starts the closing handshake
            self._send(event.response())
        self._state = WebSocketState.CLOSED
        self.close_code = event.code
        self.close_reason = event.reason or ""
        return Closed(event.code, self.close_reason, by_peer=True)

    def _fail(self, code: int, reason: str) -> Closed:
        self._reset_message()
        if self._state is WebSocketState.OPEN:
            self._send(ws.CloseConnection(code=code, reason=reason))
        self._state = WebSocketState.CLOSED
        self.close_code, self.close_reason = code, reason
        return Closed(code, reason, by_peer=False)

    # -- output ------------------------------------------------------------------------------

    def send_message(self, data: str | bytes) -> None:
        """Frame a whole text (``str``) or binary (``bytes``) message."""
        if self._state is not WebSocketState.OPEN:
            raise LocalProtocolError(f"cannot send on a WebSocket in state {self._state.value}")
        if self._fast is not None:  # no extension: wsproto's frame, written directly
            self._out.write(frame_message(data))
            return
        if isinstance(data, str):
            self._send(ws.TextMessage(data=data))
        else:
            self._send(ws.BytesMessage(data=data))

    def send_ping(self, payload: bytes = b"") -> None:
        """Send a ping (the peer answers with a pong)."""
        if self._state is WebSocketState.OPEN:
            self._send(ws.Ping(payload=payload))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (a no-op once closing)."""
        if self._state is WebSocketState.OPEN:
            self._send(ws.CloseConnection(code=code, reason=reason))
            self._state = WebSocketState.CLOSING
            self.close_code, self.close_reason = code, reason

    @property
    def has_data_to_send(self) -> bool:
        """Bytes produced (a pong, a close) wait for :meth:`data_to_send`."""
        return bool(self._out)

    def data_to_send(self) -> bytes:
        """The bytes produced since the last call; the caller must write all of them."""
        return self._out.take()

    def _send(self, event: ws.Event) -> None:
        try:
            self._out.write(self._ws.send(event))
        except WSLocalProtocolError as exc:
            raise LocalProtocolError(str(exc)) from exc
