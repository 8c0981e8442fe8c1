"""gzip for event streams: each event decodes on arrival; the whole body is valid gzip."""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawstream.core import Event, GzipEventEncoder, accepts_gzip


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("br;q=1.0, gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("deflate", False),
        ("*", True),
        ("GZIP", True),
        ("identity", False),
        ("*;q=0, gzip", True),
        ("gzip;q=0, *", False),
    ],
)
def test_accepts_gzip(header: str | None, expected: bool) -> None:
    """Accept-Encoding is read per RFC 9110: gzip (or *) with a q above zero."""
    assert accepts_gzip(header) is expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=300), min_size=1, max_size=20))
def test_each_event_decodes_on_arrival(payloads: list[str]) -> None:
    """A client decoding incrementally gets every event whole as soon as its bytes arrive."""
    encoder = GzipEventEncoder()
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    body = b""
    for payload in payloads:
        event = Event(payload).encode()
        compressed = encoder.encode(event)
        body += compressed
        assert decoder.decompress(compressed) == event
    body += encoder.finish()
    assert gzip.decompress(body) == b"".join(Event(p).encode() for p in payloads)


def test_repetitive_events_compress() -> None:
    """The window carries across events: repetitive events shrink a lot."""
    encoder = GzipEventEncoder()
    events = [
        Event('{"symbol":"ACME","price":101.25,"volume":1200}', id=str(i)).encode()
        for i in range(200)
    ]
    compressed = sum(len(encoder.encode(e)) for e in events) + len(encoder.finish())
    assert compressed < sum(map(len, events)) / 2
