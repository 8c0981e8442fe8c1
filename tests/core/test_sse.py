"""Server-Sent Events encoding.  The encoder-to-parser round trip (the parser in
:mod:`rawstream.core.sse_parser` follows the WHATWG rules) is in test_sse_parser.py."""

from __future__ import annotations

import pytest

from rawstream.core import (
    SSE_HEADERS,
    Event,
    EventStreamParser,
    InvalidEventError,
    ServerSentEvent,
    encode_comment,
    encode_retry,
)


def parse(stream: bytes) -> list[ServerSentEvent]:
    """What a WHATWG-conformant client (rawstream's own parser) dispatches from ``stream``."""
    return EventStreamParser().feed(stream)


def test_every_field_is_encoded_in_order() -> None:
    """Comment, event, id, retry and data each get one line, then the blank line."""
    event = Event(data="hello", event="greet", id="42", retry=1500, comment="note")
    assert event.encode() == b": note\nevent: greet\nid: 42\nretry: 1500\ndata: hello\n\n"


def test_data_only_event() -> None:
    """An event with just data is one data line and the blank line."""
    assert Event("hi").encode() == b"data: hi\n\n"


def test_data_is_utf8() -> None:
    """Non-ASCII data is encoded as UTF-8."""
    assert Event("h\u00e9 \u2603").encode() == "data: h\u00e9 \u2603\n\n".encode()


@pytest.mark.parametrize("newline", ["\n", "\r", "\r\n"])
def test_multi_line_data_becomes_several_data_lines(newline: str) -> None:
    """Data split on CR, LF or CRLF becomes one data: line per line."""
    data = newline.join(["one", "two", "", "three"])
    assert Event(data).encode() == b"data: one\ndata: two\ndata: \ndata: three\n\n"


def test_mixed_line_ends_in_data() -> None:
    """A mix of CR, LF and CRLF splits at each break, CRLF counting as one."""
    assert Event("a\rb\nc\r\nd\n\re").encode() == (
        b"data: a\ndata: b\ndata: c\ndata: d\ndata: \ndata: e\n\n"
    )


def test_trailing_newline_in_data_gives_an_empty_last_line() -> None:
    """Data ending in a line break ends with an empty data: line (the client keeps the LF)."""
    encoded = Event("a\n").encode()
    assert encoded == b"data: a\ndata: \n\n"
    assert parse(encoded) == [ServerSentEvent(data="a\n")]


def test_empty_data() -> None:
    """Empty data is one empty data: line, still dispatched as an empty message."""
    assert Event("").encode() == b"data: \n\n"


def test_no_data_sends_no_data_field() -> None:
    """An event without data has no data field; the client dispatches nothing but keeps the id."""
    encoded = Event(id="7").encode()
    assert encoded == b"id: 7\n\n"
    assert parse(encoded + Event("x").encode()) == [ServerSentEvent(data="x", id="7")]


def test_multi_line_comment() -> None:
    """A comment with line breaks becomes several comment lines."""
    assert Event(comment="a\r\nb").encode() == b": a\n: b\n\n"


@pytest.mark.parametrize("field", ["id", "event"])
@pytest.mark.parametrize("bad", ["\r", "\n", "\r\n", "\x00"])
def test_line_break_or_nul_in_id_or_event_is_refused(field: str, bad: str) -> None:
    """id and event containing CR, LF or NUL raise InvalidEventError at construction."""
    with pytest.raises(InvalidEventError):
        Event("x", **{field: f"a{bad}b"})


def test_invalid_event_error_is_a_value_error() -> None:
    """InvalidEventError can be caught as ValueError."""
    with pytest.raises(ValueError, match="must not contain"):
        Event(id="a\nb")


def test_negative_retry_is_refused() -> None:
    """A negative retry raises InvalidEventError."""
    with pytest.raises(InvalidEventError):
        Event(retry=-1)


def test_non_integer_retry_is_refused() -> None:
    """A non-int retry (a float of milliseconds) raises InvalidEventError."""
    with pytest.raises(InvalidEventError):
        Event(retry=1.5)  # type: ignore[arg-type]


def test_zero_retry_is_allowed() -> None:
    """retry=0 is a valid hint."""
    assert Event(retry=0).encode() == b"retry: 0\n\n"


def test_encode_comment() -> None:
    """encode_comment is a comment block; clients dispatch nothing for it."""
    assert encode_comment() == b": \n\n"
    assert encode_comment("keepalive") == b": keepalive\n\n"
    assert encode_comment("a\nb") == b": a\n: b\n\n"
    assert parse(encode_comment("a\r\nb")) == []


def test_encode_retry() -> None:
    """encode_retry is a bare retry field that a client applies."""
    assert encode_retry(3000) == b"retry: 3000\n\n"
    parser = EventStreamParser()
    assert parser.feed(encode_retry(3000)) == []
    assert parser.retry == 3000
    with pytest.raises(InvalidEventError):
        encode_retry(-5)


def test_sse_headers() -> None:
    """SSE_HEADERS carries the event-stream content type, no-cache and no proxy buffering."""
    headers = dict(SSE_HEADERS)
    assert len(headers) == len(SSE_HEADERS) == 3
    assert headers[b"content-type"].split(b";")[0] == b"text/event-stream"
    assert headers[b"cache-control"] == b"no-cache"
    assert headers[b"x-accel-buffering"] == b"no"
    assert all(name == name.lower() for name in headers)
