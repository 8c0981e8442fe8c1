"""The event stream parser, with bytes alone (WHATWG HTML 9.2.6 "Interpreting an event stream")."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawstream.core import (
    Event,
    EventStreamParser,
    EventTooLargeError,
    LocalProtocolError,
    ServerSentEvent,
)


def parse(stream: bytes, **kwargs: object) -> list[ServerSentEvent]:
    """Every event ``stream`` dispatches, fed in one piece and then ended."""
    parser = EventStreamParser(**kwargs)  # type: ignore[arg-type]
    events = parser.feed(stream)
    parser.feed_eof()
    return events


def parse_in_pieces(stream: bytes, cuts: list[int]) -> list[ServerSentEvent]:
    """Every event ``stream`` dispatches when fed in pieces split at ``cuts``."""
    parser = EventStreamParser()
    events: list[ServerSentEvent] = []
    start = 0
    for cut in [*sorted(cuts), len(stream)]:
        events += parser.feed(stream[start:cut])
        start = max(start, cut)
    parser.feed_eof()
    return events


def message(data: str, *, event: str = "message", id: str = "") -> ServerSentEvent:
    return ServerSentEvent(event=event, data=data, id=id)


# The spec's own examples (9.2.5 and 9.2.6), with what they dispatch.


def test_spec_example_three_messages() -> None:
    """Three messages, one of them two lines long."""
    stream = (
        b"data: This is the first message.\n\n"
        b"data: This is the second message, it\ndata: has two lines.\n\n"
        b"data: This is the third message.\n\n"
    )
    assert [e.data for e in parse(stream)] == [
        "This is the first message.",
        "This is the second message, it\nhas two lines.",
        "This is the third message.",
    ]


def test_spec_example_event_types() -> None:
    """``event:`` sets the type of the event it belongs to, and only that one."""
    stream = (
        b"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\n"
        b"event: add\ndata: 113411\n\ndata: plain\n\n"
    )
    assert [(e.event, e.data) for e in parse(stream)] == [
        ("add", "73857293"),
        ("remove", "2153"),
        ("add", "113411"),
        ("message", "plain"),
    ]


def test_spec_example_stock_ticker() -> None:
    """Three data lines are joined with LF into one message."""
    assert parse(b"data: YHOO\ndata: +2\ndata: 10\n\n") == [message("YHOO\n+2\n10")]


def test_spec_example_ids_and_spaces() -> None:
    """A comment, an id, an id reset by a bare ``id``, and a value keeping its second space."""
    stream = (
        b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\n"
        b"data:  third event\n\n"
    )
    assert parse(stream) == [
        message("first event", id="1"),
        message("second event", id=""),
        message(" third event", id=""),
    ]


def test_spec_example_empty_data() -> None:
    """Bare ``data`` lines: an empty message, a message of one LF, and an unfinished block."""
    assert parse(b"data\n\ndata\ndata\n\ndata:") == [message(""), message("\n")]


def test_spec_example_identical_events() -> None:
    """``data:test`` and ``data: test`` are the same field value."""
    assert parse(b"data:test\n\ndata: test\n\n") == [message("test"), message("test")]


# Line ends.


@pytest.mark.parametrize("end", [b"\n", b"\r", b"\r\n"])
def test_every_line_end(end: bytes) -> None:
    """LF, CR and CRLF each end a line."""
    stream = b"event: e" + end + b"data: a" + end + b"data: b" + end + end
    assert parse(stream) == [message("a\nb", event="e")]


def test_mixed_line_ends() -> None:
    """Line ends may change from line to line."""
    assert parse(b"data: a\rdata: b\r\ndata: c\n\r\n") == [message("a\nb\nc")]


def test_cr_at_the_end_of_a_chunk_and_lf_at_the_start_of_the_next() -> None:
    """A CRLF split between two chunks is one line end, not an end and an empty line."""
    parser = EventStreamParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\ndata: b\r") == []
    assert parser.feed(b"\n\r") == [message("a\nb")]
    assert parser.feed(b"\n") == []  # the LF completing that CR is not another blank line
    assert parser.feed(b"data: c\n\n") == [message("c")]


def test_cr_then_empty_chunk_then_lf() -> None:
    """An empty chunk between CR and LF changes nothing."""
    parser = EventStreamParser()
    events = parser.feed(b"data: a\r") + parser.feed(b"") + parser.feed(b"\n\n")
    assert events == [message("a")]


def test_two_crs_are_two_line_ends() -> None:
    """CR CR is a line end and a blank line: the event is dispatched."""
    assert parse(b"data: a\r\r") == [message("a")]


# Fields.


def test_comments_are_ignored() -> None:
    """Lines starting with a colon are comments, even inside an event."""
    assert parse(b":hi\ndata: a\n: middle\ndata: b\n:\n\n") == [message("a\nb")]


def test_field_without_colon_has_an_empty_value() -> None:
    """``event`` alone sets an empty type, which dispatches as ``message``."""
    assert parse(b"event\ndata: x\n\n") == [message("x")]


def test_only_one_space_after_the_colon_is_removed() -> None:
    """``data:  x`` keeps one space; ``data:x`` loses nothing; a tab is kept."""
    assert [e.data for e in parse(b"data:  x\n\ndata:x\n\ndata:\tx\n\n")] == [" x", "x", "\tx"]


def test_value_may_contain_colons() -> None:
    """Only the first colon separates the name from the value."""
    assert parse(b"data: a: b:c\n\n") == [message("a: b:c")]


def test_unknown_fields_are_ignored() -> None:
    """A field the spec does not name is skipped, and the event still dispatches."""
    assert parse(b"foo: bar\ndata: x\nDATA: y\n data: z\n\n") == [message("x")]


def test_event_type_resets_after_dispatch() -> None:
    """The event type applies to one event only."""
    assert [e.event for e in parse(b"event: a\ndata: 1\n\ndata: 2\n\n")] == ["a", "message"]


def test_block_without_data_dispatches_nothing_and_resets_the_type() -> None:
    """An event type with no data is dropped at the blank line, not carried forward."""
    assert parse(b"event: lost\n\ndata: x\n\n") == [message("x")]


def test_last_event_id_is_kept_across_events() -> None:
    """An event without ``id`` carries the previous id; ``id`` alone resets it."""
    events = parse(b"id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\n")
    assert [e.id for e in events] == ["7", "7", ""]


def test_id_in_a_block_without_data_still_counts() -> None:
    """A block with only ``id`` sets the last event id (for the next event and reconnection)."""
    parser = EventStreamParser()
    assert parser.feed(b"id: 5\n\n") == []
    assert parser.last_event_id == "5"
    assert parser.feed(b"data: x\n\n") == [message("x", id="5")]


def test_id_containing_nul_is_ignored() -> None:
    """An id with NUL anywhere in it is ignored; the previous id stays."""
    events = parse(b"id: 1\ndata: a\n\nid: 2\x00\ndata: b\n\nid: \x003\ndata: c\n\n")
    assert [e.id for e in events] == ["1", "1", "1"]


def test_id_of_an_unfinished_block_is_not_the_last_event_id() -> None:
    """The last event id changes when a block ends, so a cut-off ``id`` is not resumed from."""
    parser = EventStreamParser()
    parser.feed(b"id: 1\ndata: a\n\nid: 2\ndata: b\n")
    parser.feed_eof()
    assert parser.last_event_id == "1"


def test_last_event_id_given_at_start() -> None:
    """A parser started from an id reports it on events until the stream sets another."""
    events = parse(b"data: a\n\nid: 9\ndata: b\n\n", last_event_id="8")
    assert [e.id for e in events] == ["8", "9"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"1000", 1000),
        (b"0", 0),
        (b"007", 7),
        (b"", None),
        (b"1.5", None),
        (b"-1", None),
        (b"10s", None),
        (b" 5", 5),  # one leading space is the separator
        (b"  5", None),
        ("٣".encode(), None),  # an Arabic-Indic digit is not an ASCII digit
        (b"9" * 5000, 10**18),  # absurdly long: saturates
    ],
)
def test_retry_only_when_all_ascii_digits(value: bytes, expected: int | None) -> None:
    """``retry`` sets the reconnection time only when its value is all ASCII digits."""
    parser = EventStreamParser()
    parser.feed(b"retry:" + value + b"\n\n")
    assert parser.retry == expected


def test_retry_is_reported_on_its_own_event() -> None:
    """An event carries the ``retry`` of its own block; the stream keeps the latest."""
    parser = EventStreamParser()
    events = parser.feed(b"retry: 500\ndata: a\n\ndata: b\n\nretry: 700\n\n")
    assert [e.retry for e in events] == [500, None]
    assert parser.retry == 700


# Decoding.


def test_one_leading_bom_is_stripped() -> None:
    """A UTF-8 BOM at the very start is dropped; a second one is part of the first line."""
    bom = b"\xef\xbb\xbf"
    assert parse(bom + b"data: a\n\n") == [message("a")]
    # The second BOM makes the first line's field name "\ufeffdata", an unknown field.
    assert parse(bom + bom + b"data: a\n\ndata: b\n\n") == [message("b")]


def test_bom_split_across_chunks() -> None:
    """A BOM arriving one byte at a time is still stripped."""
    assert parse_in_pieces(b"\xef\xbb\xbfdata: a\n\n", [1, 2, 3]) == [message("a")]


def test_bom_later_in_the_stream_is_data() -> None:
    """A BOM that does not start the stream is kept."""
    assert parse(b"data: \xef\xbb\xbfa\n\n") == [message("\ufeffa")]


def test_invalid_utf8_is_replaced() -> None:
    """Invalid bytes become U+FFFD, and do not swallow the line end."""
    assert parse(b"data: a\xffb\xe2\x82\n\nevent: \xc3\ndata: c\n\n") == [
        message("a\ufffdb\ufffd"),
        message("c", event="\ufffd"),
    ]


def test_multibyte_characters_split_across_chunks() -> None:
    """A character split between chunks decodes whole."""
    stream = "data: héllo €𝄞\n\n".encode()
    assert parse_in_pieces(stream, list(range(len(stream)))) == [message("héllo €𝄞")]


# Chunking and end of stream.

_STREAM = (
    b"\xef\xbb\xbf: comment\r\nretry: 1500\rid: 1\nevent: e\ndata: one\r\ndata:  two\r\r"
    b"data\n\ndata: caf\xc3\xa9\r\n\r\nid: bad\x00\ndata: x\n\nid\nevent\ndata: last\n\n"
    b"data: unfinished\n"
)


def test_feeding_at_every_split_gives_the_same_events() -> None:
    """Splitting the stream in two at any byte, or byte by byte, changes nothing."""
    whole = parse(_STREAM)
    assert [e.data for e in whole] == ["one\n two", "", "café", "x", "last"]
    for cut in range(len(_STREAM) + 1):
        assert parse_in_pieces(_STREAM, [cut]) == whole, cut
    assert parse_in_pieces(_STREAM, list(range(len(_STREAM)))) == whole


def test_unfinished_event_is_discarded_at_eof() -> None:
    """An event without its blank line is never dispatched, even after more data."""
    parser = EventStreamParser()
    assert parser.feed(b"data: a\n") == []
    parser.feed_eof()
    assert parser.feed(b"data: b\n\n") == [message("b")]


def test_after_eof_a_new_stream_may_start_with_a_bom() -> None:
    """feed_eof readies the parser for a reconnection: a new BOM, a fresh event, same id."""
    parser = EventStreamParser()
    parser.feed(b"id: 3\nretry: 10\n\nevent: t\ndata: half")
    parser.feed_eof()
    assert parser.feed(b"\xef\xbb\xbfdata: b\n\n") == [message("b", id="3")]
    assert parser.retry == 10


# Limits.


def test_a_line_over_the_limit_raises() -> None:
    """A line longer than max_event_bytes raises, whether it arrives whole or in pieces."""
    with pytest.raises(EventTooLargeError) as whole:
        EventStreamParser(max_event_bytes=10).feed(b"data: 12345678901\n\n")
    assert whole.value.limit == 10
    parser = EventStreamParser(max_event_bytes=10)
    parser.feed(b"data: 1234")
    with pytest.raises(EventTooLargeError):
        parser.feed(b"56789")


def test_unterminated_comment_is_bounded_too() -> None:
    """A comment line that never ends cannot grow without bound either."""
    parser = EventStreamParser(max_event_bytes=16)
    with pytest.raises(EventTooLargeError):
        for _ in range(10):
            parser.feed(b": keep talking")


def test_event_data_over_the_limit_raises() -> None:
    """Many short data lines adding up to more than the limit raise."""
    parser = EventStreamParser(max_event_bytes=12)
    assert parser.feed(b"data: 12345\ndata: 123456\n\n") == [message("12345\n123456")]  # 12
    with pytest.raises(EventTooLargeError):
        parser.feed(b"data: 123456\ndata: 123456\n\n")  # 13 bytes of data, lines of 12


def test_a_failed_parser_stays_failed() -> None:
    """After the limit error, feeding again is a local error, not a half-parsed stream."""
    parser = EventStreamParser(max_event_bytes=4)
    with pytest.raises(EventTooLargeError):
        parser.feed(b"data: 12345\n\n")
    with pytest.raises(LocalProtocolError):
        parser.feed(b"data: 1\n\n")


def test_events_at_the_limit_pass() -> None:
    """A line of exactly max_event_bytes is accepted."""
    assert parse(b"data: 1234\n\n", max_event_bytes=10) == [message("1234")]


# The core's encoder and this parser agree.

# Any text (hypothesis' st.text() never yields lone surrogates), with line breaks, leading
# spaces and colons made frequent.
_any_text = st.lists(
    st.text() | st.sampled_from(["\r", "\n", "\r\n", " ", ":", ": ", "\n\n", "\r\r", "\x00"]),
    max_size=8,
).map("".join)
_single_line = _any_text.map(lambda s: re.sub(r"[\r\n\x00]", "", s))

_events = st.builds(
    Event,
    data=st.none() | _any_text,
    event=st.none() | _single_line,
    id=st.none() | _single_line,
    retry=st.none() | st.integers(min_value=0, max_value=10**12),
    comment=st.none() | _any_text,
)


def expected_dispatch(events: list[Event]) -> list[ServerSentEvent]:
    """What the spec says a stream of these encoded events dispatches."""
    dispatched: list[ServerSentEvent] = []
    last_id = ""
    for event in events:
        if event.id is not None:
            last_id = event.id
        if event.data is None:
            continue
        data = event.data.replace("\r\n", "\n").replace("\r", "\n")
        dispatched.append(
            ServerSentEvent(
                event=event.event or "message", data=data, id=last_id, retry=event.retry
            )
        )
    return dispatched


@settings(max_examples=200, deadline=None)
@given(events=st.lists(_events, max_size=8), cuts=st.lists(st.integers(min_value=0)))
def test_encoder_then_parser_round_trips(events: list[Event], cuts: list[int]) -> None:
    """Any events encoded by Event.encode() and fed in any pieces come back as the spec says."""
    stream = b"".join(event.encode() for event in events)
    pieces = [cut % (len(stream) + 1) for cut in cuts]
    assert parse_in_pieces(stream, pieces) == expected_dispatch(events)


@settings(max_examples=200, deadline=None)
@given(events=st.lists(_events, min_size=1, max_size=4), cut=st.integers(min_value=0))
def test_an_event_never_dispatches_before_its_blank_line(events: list[Event], cut: int) -> None:
    """A stream cut anywhere inside its last event dispatches only the events before it."""
    head = b"".join(event.encode() for event in events[:-1])
    last = events[-1].encode()
    partial = head + last[: cut % len(last)]  # everything but at least the final LF
    assert parse(partial) == expected_dispatch(events[:-1])
