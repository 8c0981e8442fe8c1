"""A real h11 client as the peer of :class:`rawstream.core.HTTPConnection`.

In the manner of h11's own ``tests/helpers.py``: the client side is h11 itself, so request
bytes are produced, and response bytes parsed, by an independent implementation of HTTP/1.1.
"""

from __future__ import annotations

import h11

from rawstream.core import (
    NEED_DATA,
    BodyData,
    EndOfRequest,
    HTTPConnection,
    HTTPEvent,
    RequestHead,
)

Headers = list[tuple[bytes, bytes]]

#: Headers that change a request's framing or the connection's life: generated requests leave
#: them out (h11 adds Host and framing itself; the fuzzer's mutations add the rest).
FRAMING_HEADERS = frozenset(
    {b"host", b"content-length", b"transfer-encoding", b"connection", b"expect", b"upgrade"}
)


def normalize_data_events(events: list[h11.Event]) -> list[h11.Event]:
    """Merge adjacent ``h11.Data`` events and turn their payloads into ``bytes``."""
    out: list[h11.Event] = []
    for event in events:
        if type(event) is h11.Data:
            event = h11.Data(data=bytes(event.data))
        if out and type(out[-1]) is type(event) is h11.Data:
            out[-1] = h11.Data(data=out[-1].data + event.data)
        else:
            out.append(event)
    return out


def server_events(server: HTTPConnection) -> list[HTTPEvent]:
    """Every event the server can produce from the bytes it holds, up to ``NEED_DATA``."""
    events: list[HTTPEvent] = []
    while True:
        event = server.next_event()
        if event is NEED_DATA:
            return events
        events.append(event)  # type: ignore[arg-type]
        if not isinstance(event, RequestHead | BodyData | EndOfRequest):
            return events


class Client:
    """An h11 client: request bytes out, parsed response events in."""

    def __init__(self) -> None:
        self.conn = h11.Connection(h11.CLIENT)

    def request(
        self,
        method: bytes = b"GET",
        target: bytes = b"/",
        headers: Headers | None = None,
        body: bytes | None = None,
        *,
        http_version: bytes = b"1.1",
        end: bool = True,
    ) -> bytes:
        """The bytes of a request (``Host`` added unless given), ended unless ``end`` is false."""
        headers = list(headers or [])
        if not any(name.lower() == b"host" for name, _ in headers):
            headers.insert(0, (b"host", b"example.com"))
        data = (
            self.conn.send(
                h11.Request(
                    method=method, target=target, headers=headers, http_version=http_version
                )
            )
            or b""
        )
        if body:
            data += self.conn.send(h11.Data(data=body)) or b""
        if end:
            data += self.conn.send(h11.EndOfMessage()) or b""
        return data

    def receive(self, data: bytes, *, eof: bool = False) -> list[h11.Event]:
        """Feed response bytes; return the complete events they hold (data events merged)."""
        self.conn.receive_data(data)
        if eof:
            self.conn.receive_data(b"")
        events: list[h11.Event] = []
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                break
            events.append(event)  # type: ignore[arg-type]
            if isinstance(event, h11.ConnectionClosed):
                break
        return normalize_data_events(events)


def response_head(events: list[h11.Event]) -> h11.Response:
    """The single final response among ``events``."""
    responses = [e for e in events if isinstance(e, h11.Response)]
    assert len(responses) == 1, events
    return responses[0]


def body_of(events: list[h11.Event]) -> bytes:
    """The response body carried by ``events``."""
    return b"".join(bytes(e.data) for e in events if isinstance(e, h11.Data))


def header_values(headers: list[tuple[bytes, bytes]] | h11.Response, name: bytes) -> list[bytes]:
    """Every value of header ``name`` (case-insensitive)."""
    if isinstance(headers, h11.Response):
        headers = list(headers.headers)
    return [bytes(v) for k, v in headers if bytes(k).lower() == name.lower()]
