"""Server-Sent Events encoding, checked against a WHATWG-conformant parser written here."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawstream.core import SSE_HEADERS, Event, InvalidEventError, encode_comment, encode_retry

# -- a parser per WHATWG HTML, "Server-sent events", section "Interpreting an event stream" -------

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Dispatched:
    """What a browser's EventSource hands to a listener."""

    type: str
    data: str
    last_event_id: str


@dataclass
class Parsed:
    """The dispatched events and the connection-level state left behind."""

    events: list[Dispatched]
    retry: int | None


def parse(stream: bytes) -> Parsed:
    """Interpret a whole event stream as the spec's EventSource would."""
    text = stream.decode("utf-8")  # the spec's "UTF-8 decode" (errors would be U+FFFD)
    if text.startswith("\ufeff"):
        text = text[1:]
    # Every line ends with CRLF, LF or CR; what follows the last line end is an unfinished
    # line, discarded at the end of the stream together with any undispatched event.
    lines = _LINE_END.split(text)[:-1]
    events: list[Dispatched] = []
    data = event_type = ""
    last_event_id = ""
    retry: int | None = None
    for line in lines:
        if line == "":
            # dispatch: the last event ID is set even if nothing is dispatched
            if data == "":
                event_type = ""
                continue
            if data.endswith("\n"):
                data = data[:-1]
            events.append(Dispatched(event_type or "message", data, last_event_id))
            data = event_type = ""
            continue
        if line.startswith(":"):
            continue
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "event":
            event_type = value
        elif field == "data":
            data += value + "\n"
        elif field == "id":
            if "\x00" not in value:
                last_event_id = value
        elif field == "retry" and value and all(c in "0123456789" for c in value):
            retry = int(value)
    return Parsed(events, retry)


def test_parser_follows_the_spec_example() -> None:
    """The parser itself: the spec's examples (CR/LF/CRLF mix, no-space values, comments)."""
    stream = (
        b": test stream\r\n\r\ndata: first event\nid: 1\n\rdata:second event\r\nid\n\n"
        b"data:  third event\n\ndata\n\ndata\ndata\n\ndata:"
    )
    assert parse(stream).events == [
        Dispatched("message", "first event", "1"),
        Dispatched("message", "second event", ""),
        Dispatched("message", " third event", ""),
        Dispatched("message", "", ""),
        Dispatched("message", "\n", ""),
    ]


# -- encoding -------------------------------------------------------------------------------------


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
    assert parse(encoded).events == [Dispatched("message", "a\n", "")]


def test_empty_data() -> None:
    """Empty data is one empty data: line, still dispatched as an empty message."""
    assert Event("").encode() == b"data: \n\n"


def test_no_data_sends_no_data_field() -> None:
    """An event without data has no data field; the client dispatches nothing but keeps the id."""
    encoded = Event(id="7").encode()
    assert encoded == b"id: 7\n\n"
    assert parse(encoded + Event("x").encode()).events == [Dispatched("message", "x", "7")]


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
    assert parse(encode_comment("a\r\nb")).events == []


def test_encode_retry() -> None:
    """encode_retry is a bare retry field that a client applies."""
    assert encode_retry(3000) == b"retry: 3000\n\n"
    assert parse(encode_retry(3000)).retry == 3000
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


# -- the round trip -------------------------------------------------------------------------------

# Any text (hypothesis' st.text() never yields lone surrogates), with line breaks, leading
# spaces and colons made frequent.
any_text = st.lists(
    st.text() | st.sampled_from(["\r", "\n", "\r\n", " ", ":", ": ", "\n\n", "\r\r", "\x00"]),
    max_size=8,
).map("".join)
single_line = any_text.map(lambda s: re.sub(r"[\r\n\x00]", "", s))
events = st.builds(
    Event,
    data=st.none() | any_text,
    event=st.none() | single_line,
    id=st.none() | single_line,
    retry=st.none() | st.integers(0, 10**9),
    comment=st.none() | any_text,
)


def expected_dispatches(sent: list[Event]) -> list[Dispatched]:
    """What the spec says a client sees: line breaks in data arrive as LF, ids carry over."""
    out: list[Dispatched] = []
    last_id = ""
    for event in sent:
        if event.id is not None:
            last_id = event.id
        if event.data is not None:
            data = "\n".join(_LINE_END.split(event.data))
            out.append(Dispatched(event.event or "message", data, last_id))
    return out


@settings(max_examples=200, deadline=None)
@given(sent=st.lists(events, max_size=6))
def test_any_events_round_trip_through_a_spec_parser(sent: list[Event]) -> None:
    """Every event with data reaches a conformant client with its type, data and last id."""
    stream = b"".join(event.encode() for event in sent)
    parsed = parse(stream)
    assert parsed.events == expected_dispatches(sent)
    retries = [event.retry for event in sent if event.retry is not None]
    assert parsed.retry == (retries[-1] if retries else None)


@settings(max_examples=200, deadline=None)
@given(sent=st.lists(events, min_size=1, max_size=4), cut=st.integers(min_value=0))
def test_an_event_never_dispatches_before_its_blank_line(sent: list[Event], cut: int) -> None:
    """A stream cut anywhere inside the last event dispatches only the events before it."""
    head = b"".join(event.encode() for event in sent[:-1])
    last = sent[-1].encode()
    partial = head + last[: cut % len(last)]  # everything but at least the final LF
    try:
        parsed = parse(partial)
    except UnicodeDecodeError:  # cut inside a UTF-8 sequence: nothing to check
        return
    assert parsed.events == expected_dispatches(sent[:-1])
