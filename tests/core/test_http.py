"""HTTPConnection, driven with byte strings; the peer is a real h11 client (see helpers.py)."""

from __future__ import annotations

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawstream.core import (
    NEED_DATA,
    BodyData,
    ClientClosed,
    EndOfRequest,
    HTTPConnection,
    LocalProtocolError,
    RemoteProtocolError,
    RequestHead,
)
from rawstream.core.http import chunk_frame

from .helpers import FRAMING_HEADERS, Client, body_of, header_values, response_head, server_events

HYPOTHESIS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def raw(*lines: str) -> bytes:
    """A request head from its lines (CRLF line ends and the blank line added)."""
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def receive(server: HTTPConnection, data: bytes) -> list[object]:
    """Feed ``data`` and collect the events it yields."""
    server.receive_data(data)
    return list(server_events(server))


def request_error(server: HTTPConnection, data: bytes) -> RemoteProtocolError:
    """Feed ``data`` and return the RemoteProtocolError the events raise."""
    server.receive_data(data)
    with pytest.raises(RemoteProtocolError) as info:
        server_events(server)
    return info.value


def respond(
    server: HTTPConnection,
    status: int = 200,
    headers: list[tuple[bytes, bytes]] | None = None,
    chunks: tuple[bytes, ...] = (b"ok",),
) -> bytes:
    """Send a whole response and return its bytes."""
    server.send_response(status, headers or [])
    for chunk in chunks:
        server.send_body(chunk)
    server.end_response()
    return server.data_to_send()


# -- request parsing ------------------------------------------------------------------------------


def test_request_head_is_parsed() -> None:
    """Method, target, path, query, version and lower-cased headers come from the request line."""
    server = HTTPConnection()
    client = Client()
    events = receive(
        server,
        client.request(b"GET", b"/items/7?a=1&b=&a=2", [(b"X-Trace", b"abc"), (b"Accept", b"*/*")]),
    )
    head, end = events
    assert isinstance(head, RequestHead)
    assert head.method == "GET"
    assert head.target == "/items/7?a=1&b=&a=2"
    assert head.path == "/items/7"
    assert head.query_string == "a=1&b=&a=2"
    assert head.query() == [("a", "1"), ("b", ""), ("a", "2")]
    assert head.http_version == "1.1"
    assert head.headers == (
        (b"host", b"example.com"),
        (b"x-trace", b"abc"),
        (b"accept", b"*/*"),
    )
    assert head.header(b"x-trace") == b"abc"
    assert head.header(b"missing") is None
    assert end == EndOfRequest()
    assert server.request_complete


def test_body_arrives_in_pieces_up_to_the_limit() -> None:
    """A body exactly at max_body_bytes, fed byte by byte, is delivered whole."""
    server = HTTPConnection(max_body_bytes=10)
    data = Client().request(b"POST", b"/", [(b"content-length", b"10")], b"0123456789")
    events: list[object] = []
    for i in range(len(data)):
        events += receive(server, data[i : i + 1])
    assert isinstance(events[0], RequestHead)
    assert events[-1] == EndOfRequest()
    assert b"".join(e.data for e in events if isinstance(e, BodyData)) == b"0123456789"


def test_content_length_over_limit_is_413_before_the_body() -> None:
    """A Content-Length above max_body_bytes is refused with 413 as soon as the head is parsed."""
    server = HTTPConnection(max_body_bytes=10)
    error = request_error(server, raw("POST / HTTP/1.1", "Host: a", "Content-Length: 11"))
    assert error.status_hint == 413
    assert not server.keep_alive


def test_chunked_body_growing_past_limit_is_413() -> None:
    """A chunked body is counted as it streams in and refused with 413 once past the limit."""
    server = HTTPConnection(max_body_bytes=10)
    client = Client()
    head = client.request(b"POST", b"/", [(b"transfer-encoding", b"chunked")], end=False)
    events = receive(server, head + client.conn.send(h11.Data(data=b"0123456")))
    assert isinstance(events[0], RequestHead)
    assert events[1:] == [BodyData(b"0123456")]
    error = request_error(server, client.conn.send(h11.Data(data=b"7890")))
    assert error.status_hint == 413
    assert not server.keep_alive


def test_oversized_head_in_pieces_is_431() -> None:
    """A head that keeps growing without ending is refused by h11's limit with 431."""
    server = HTTPConnection(max_head_bytes=1024)
    server.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n")
    assert server.next_event() is NEED_DATA
    with pytest.raises(RemoteProtocolError) as info:
        for _ in range(100):
            server.receive_data(b"X-Filler: " + b"x" * 50 + b"\r\n")
            assert server.next_event() is NEED_DATA
    assert info.value.status_hint == 431
    assert isinstance(info.value.__cause__, h11.RemoteProtocolError)  # h11's own limit


def test_oversized_head_in_one_piece_is_431() -> None:
    """A complete head larger than max_head_bytes, arriving at once, is refused with 431."""
    server = HTTPConnection(max_head_bytes=1024)
    error = request_error(server, Client().request(headers=[(b"x-big", b"x" * 2000)]))
    assert error.status_hint == 431
    assert error.__cause__ is None  # our check on the parsed head, not h11's
    assert not server.keep_alive


def test_head_just_under_the_limit_is_accepted() -> None:
    """A head well under max_head_bytes passes the one-piece size check."""
    server = HTTPConnection(max_head_bytes=1024)
    events = receive(server, Client().request(headers=[(b"x-big", b"x" * 800)]))
    assert isinstance(events[0], RequestHead)


def _target_for_line(length: int) -> bytes:
    """A target making ``GET <target> HTTP/1.1`` exactly ``length`` bytes long."""
    return b"/" + b"a" * (length - len(b"GET / HTTP/1.1"))


def test_request_line_at_the_limit_is_accepted() -> None:
    """A request line of exactly max_request_line_bytes (CRLF not counted) is parsed."""
    server = HTTPConnection(max_request_line_bytes=100)
    target = _target_for_line(100)
    events = receive(server, Client().request(target=target))
    assert isinstance(events[0], RequestHead)
    assert events[0].target == target.decode()


def test_request_line_over_the_limit_is_414() -> None:
    """A request line one byte over max_request_line_bytes is refused with 414, and closes,
    even though the whole head is well under max_head_bytes."""
    server = HTTPConnection(max_request_line_bytes=100)
    error = request_error(server, Client().request(target=_target_for_line(101)))
    assert error.status_hint == 414
    assert not server.keep_alive
    server.send_error(error.status_hint)
    data = server.data_to_send()
    assert data.startswith(b"HTTP/1.1 414 URI Too Long\r\n")
    assert b"connection: close\r\n" in data.lower()


def test_request_line_in_pieces_past_the_head_limit_is_414() -> None:
    """A request line that trickles in past max_head_bytes trips h11's limit (431) while the
    line is unfinished: that is answered as 414, the line being what is too long."""
    server = HTTPConnection(max_head_bytes=1024, max_request_line_bytes=512)
    server.receive_data(b"GET /")
    assert server.next_event() is NEED_DATA
    with pytest.raises(RemoteProtocolError) as info:
        for _ in range(100):
            server.receive_data(b"a" * 100)
            assert server.next_event() is NEED_DATA
    assert info.value.status_hint == 414
    assert isinstance(info.value.__cause__, h11.RemoteProtocolError)  # found by h11's limit


def test_headers_in_pieces_past_the_head_limit_stay_431() -> None:
    """h11's limit reached after a short request line is still 431 (the headers are big)."""
    server = HTTPConnection(max_head_bytes=1024, max_request_line_bytes=512)
    with pytest.raises(RemoteProtocolError) as info:
        server.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n")
        for _ in range(100):
            server.receive_data(b"X-Filler: " + b"x" * 50 + b"\r\n")
            assert server.next_event() is NEED_DATA
    assert info.value.status_hint == 431


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (raw("HEAD / HTTP/1.1", "Host: a", "Content-Length: 99999"), 413),
        (raw("HEAD /" + "a" * 200 + " HTTP/1.1", "Host: a"), 414),
        (raw("HEAD / HTTP/1.1", "Host: a", *["X: y"] * 10), 431),
        (raw("HEAD / HTTP/1.1", "Host: a", "Content-Length: 1", "Transfer-Encoding: chunked"), 400),
    ],
    ids=["413", "414", "431", "cl-and-te"],
)
def test_refused_head_request_gets_a_bodiless_error(request_bytes: bytes, status: int) -> None:
    """A HEAD request refused by a check on its head still gets its error response, without a
    body (found by tests/core/test_fuzz.py: h11 knew the method before our checks did, and
    refused send_error's body as more than the declared length of a HEAD response)."""
    server = HTTPConnection(max_request_line_bytes=100, max_header_count=10, max_body_bytes=10)
    error = request_error(server, request_bytes)
    assert error.status_hint == status
    server.send_error(error.status_hint)
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="HEAD", target="/", headers=[("host", "a")]))
    client.receive_data(server.data_to_send())
    response = client.next_event()
    assert isinstance(response, h11.Response)
    assert response.status_code == status
    assert isinstance(client.next_event(), h11.EndOfMessage)


def test_header_count_at_the_limit_is_accepted() -> None:
    """max_header_count header fields (Host included) are accepted."""
    server = HTTPConnection(max_header_count=10)
    headers = [(b"x-h%d" % i, b"v") for i in range(9)]
    events = receive(server, Client().request(headers=headers))
    assert isinstance(events[0], RequestHead)
    assert len(events[0].headers) == 10


def test_header_count_over_the_limit_is_431() -> None:
    """One header field more than max_header_count is refused with 431 and closes; repeated
    names count once per field."""
    server = HTTPConnection(max_header_count=10)
    error = request_error(server, Client().request(headers=[(b"x-same", b"v")] * 10))
    assert error.status_hint == 431
    assert "too many header fields" in str(error)
    assert not server.keep_alive


def test_malformed_request_line_is_400() -> None:
    """A request line that is not METHOD SP target SP version is refused with 400."""
    error = request_error(HTTPConnection(), b"GARBAGE\r\nHost: a\r\n\r\n")
    assert error.status_hint == 400


def test_content_length_and_transfer_encoding_is_400_and_closes() -> None:
    """Both Content-Length and Transfer-Encoding (request smuggling) is 400, then close."""
    server = HTTPConnection()
    error = request_error(
        server,
        raw("POST / HTTP/1.1", "Host: a", "Content-Length: 5", "Transfer-Encoding: chunked"),
    )
    assert error.status_hint == 400
    assert not server.keep_alive
    server.send_error(error.status_hint)
    assert b"connection: close" in server.data_to_send().lower()


def test_http_2_request_line_is_505() -> None:
    """An HTTP/2.0 request line is answered with 505."""
    server = HTTPConnection()
    error = request_error(server, raw("GET / HTTP/2.0", "Host: a"))
    assert error.status_hint == 505
    assert not server.keep_alive


def test_receive_eof_between_requests_is_client_closed() -> None:
    """EOF with no request in progress is a ClientClosed event."""
    server = HTTPConnection()
    server.receive_eof()
    assert server.next_event() == ClientClosed()


def test_empty_receive_data_is_not_eof() -> None:
    """receive_data(b"") is ignored: EOF is receive_eof's job, and bytes may still follow."""
    server = HTTPConnection()
    server.receive_data(b"")
    assert server.next_event() is NEED_DATA
    events = receive(server, Client().request())
    assert isinstance(events[0], RequestHead)


def test_receive_eof_mid_request_is_remote_protocol_error() -> None:
    """EOF in the middle of a request head is a protocol error, not a clean close."""
    server = HTTPConnection()
    server.receive_data(b"GET / HTTP/1.1\r\nHo")
    server.receive_eof()
    with pytest.raises(RemoteProtocolError):
        server.next_event()


# -- responses ------------------------------------------------------------------------------------


def test_fixed_length_response_is_parsed_by_h11() -> None:
    """A response with content-length is sent as-is and parsed back by the h11 client."""
    server, client = HTTPConnection(), Client()
    receive(server, client.request())
    data = respond(server, 200, [(b"content-length", b"5")], (b"he", b"llo"))
    assert b"transfer-encoding" not in data.lower()
    events = client.receive(data)
    head = response_head(events)
    assert head.status_code == 200
    assert head.reason == b"OK"
    assert header_values(head, b"content-length") == [b"5"]
    assert body_of(events) == b"hello"
    assert isinstance(events[-1], h11.EndOfMessage)


def test_streaming_response_is_chunked() -> None:
    """A response without content-length streams as chunked, piece by piece."""
    server, client = HTTPConnection(), Client()
    receive(server, client.request())
    server.send_response(200, [(b"content-type", b"text/plain")])
    assert server.response_started
    head = response_head(client.receive(server.data_to_send()))
    assert header_values(head, b"transfer-encoding") == [b"chunked"]
    server.send_body(b"one ")
    assert body_of(client.receive(server.data_to_send())) == b"one "
    server.send_body(b"two")
    server.end_response()
    events = client.receive(server.data_to_send())
    assert body_of(events) == b"two"
    assert isinstance(events[-1], h11.EndOfMessage)
    assert server.keep_alive


def test_keep_alive_serves_two_requests_in_sequence() -> None:
    """After start_next_cycle the same connection parses and answers a second request."""
    server, client = HTTPConnection(), Client()
    for path in (b"/first", b"/second"):
        head, _end = receive(server, client.request(target=path))
        assert isinstance(head, RequestHead)
        assert head.path == path.decode()
        events = client.receive(respond(server, chunks=(path,)))
        assert body_of(events) == path
        assert server.keep_alive
        server.start_next_cycle()
        client.conn.start_next_cycle()
        assert not server.response_started


def test_pipelined_requests_are_answered_in_order() -> None:
    """A second pipelined request stays buffered until start_next_cycle, then is answered."""
    server, client = HTTPConnection(), Client()
    first = client.request(target=b"/1")
    second = Client().request(target=b"/2")
    server.receive_data(first + second)
    head, _end = server_events(server)
    assert isinstance(head, RequestHead)
    assert head.path == "/1"
    assert server.next_event() is NEED_DATA
    assert server.buffered_bytes == len(second)
    assert body_of(client.receive(respond(server, chunks=(b"one",)))) == b"one"

    server.start_next_cycle()
    client.conn.start_next_cycle()
    client.request(target=b"/2")  # the client's own state follows what it pipelined
    head, _end = server_events(server)
    assert isinstance(head, RequestHead)
    assert head.path == "/2"
    assert body_of(client.receive(respond(server, chunks=(b"two",)))) == b"two"


def test_head_response_has_get_headers_and_no_body() -> None:
    """HEAD gets the head a GET would get and not a single body byte."""
    server, client = HTTPConnection(), Client()
    receive(server, client.request(b"HEAD"))
    data = respond(server, 200, [(b"content-type", b"text/plain")], (b"body",))
    assert data.endswith(b"\r\n\r\n")
    assert b"body" not in data
    head = response_head(client.receive(data))
    assert header_values(head, b"transfer-encoding") == [b"chunked"]
    assert header_values(head, b"content-type") == [b"text/plain"]


def test_head_response_with_content_length_keeps_it_and_sends_no_body() -> None:
    """A HEAD response keeps its content-length header while its body bytes are dropped."""
    server, client = HTTPConnection(), Client()
    receive(server, client.request(b"HEAD"))
    data = respond(server, 200, [(b"content-length", b"4")], (b"body",))
    assert data.endswith(b"\r\n\r\n")
    assert header_values(response_head(client.receive(data)), b"content-length") == [b"4"]
    assert server.keep_alive


def test_expect_100_continue_is_sent_when_waiting() -> None:
    """With Expect: 100-continue, send_continue emits 100 Continue before the body arrives."""
    server, client = HTTPConnection(), Client()
    head = client.request(
        b"POST", b"/", [(b"content-length", b"3"), (b"expect", b"100-continue")], end=False
    )
    events = receive(server, head)
    assert isinstance(events[0], RequestHead)
    assert server.waiting_for_continue
    server.send_continue()
    data = server.data_to_send()
    assert data.startswith(b"HTTP/1.1 100 Continue\r\n")
    (informational,) = client.receive(data)
    assert isinstance(informational, h11.InformationalResponse)
    assert informational.status_code == 100
    assert not server.waiting_for_continue
    server.send_continue()
    assert server.data_to_send() == b""


def test_send_continue_is_a_noop_when_the_client_is_not_waiting() -> None:
    """Without Expect: 100-continue, send_continue writes nothing."""
    server = HTTPConnection()
    receive(server, Client().request(b"POST", b"/", [(b"content-length", b"3")], b"abc"))
    assert not server.waiting_for_continue
    server.send_continue()
    assert server.data_to_send() == b""


def test_connection_close_request_disables_keep_alive() -> None:
    """A request with Connection: close leaves keep_alive false after the response."""
    server, client = HTTPConnection(), Client()
    receive(server, client.request(headers=[(b"connection", b"close")]))
    client.receive(respond(server))
    assert not server.keep_alive
    with pytest.raises(LocalProtocolError):
        server.start_next_cycle()


def test_send_error_writes_a_closing_response() -> None:
    """send_error writes a complete text response carrying Connection: close."""
    server, client = HTTPConnection(), Client()
    receive(server, client.request())
    server.send_error(404, "no such thing", headers=((b"x-why", b"test"),))
    events = client.receive(server.data_to_send())
    head = response_head(events)
    assert head.status_code == 404
    assert head.reason == b"Not Found"
    assert header_values(head, b"connection") == [b"close"]
    assert header_values(head, b"x-why") == [b"test"]
    assert body_of(events) == b"no such thing\n"
    assert not server.keep_alive


def test_send_error_after_unparseable_request() -> None:
    """send_error still produces a 400 after h11 failed to parse the request."""
    server = HTTPConnection()
    error = request_error(server, b"GARBAGE\r\n\r\n")
    server.send_error(error.status_hint)
    data = server.data_to_send()
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"connection: close\r\n" in data.lower()
    assert data.endswith(b"\r\n\r\nBad Request\n")


def test_http_10_response_without_length_is_close_delimited() -> None:
    """An HTTP/1.0 client gets a streamed response delimited by closing, not chunked."""
    server = HTTPConnection()
    (head, _end) = receive(server, b"GET / HTTP/1.0\r\n\r\n")  # h11's client only sends 1.1
    assert isinstance(head, RequestHead)
    assert head.http_version == "1.0"
    data = respond(server, 200, [], (b"abc", b"def"))
    assert b"transfer-encoding" not in data.lower()
    assert b"content-length" not in data.lower()
    assert data.endswith(b"\r\n\r\nabcdef")
    client = Client()
    client.request()  # a client whose response has no length reads it up to EOF
    events = client.receive(data, eof=True)
    assert header_values(response_head(events), b"connection") == [b"close"]
    assert body_of(events) == b"abcdef"
    assert isinstance(events[-1], h11.ConnectionClosed)
    assert not server.keep_alive


def test_send_before_request_is_local_protocol_error() -> None:
    """Sending body bytes without a response head is the caller's error."""
    server = HTTPConnection()
    receive(server, Client().request())
    with pytest.raises(LocalProtocolError):
        server.send_body(b"x")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"upgrade", b"websocket"), (b"connection", b"Upgrade")], "websocket"),
        ([(b"upgrade", b"WebSocket"), (b"connection", b"keep-alive, Upgrade")], "websocket"),
        ([(b"upgrade", b"websocket")], None),
        ([(b"connection", b"upgrade")], None),
        ([(b"upgrade", b"websocket"), (b"connection", b"keep-alive")], None),
        ([], None),
    ],
)
def test_wants_upgrade_to(headers: list[tuple[bytes, bytes]], expected: str | None) -> None:
    """wants_upgrade_to names the Upgrade protocol only when Connection lists upgrade."""
    server = HTTPConnection()
    head, _ = receive(server, Client().request(headers=headers))
    assert isinstance(head, RequestHead)
    assert head.wants_upgrade_to == expected


# -- properties -----------------------------------------------------------------------------------

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
header_names = (
    st.text(TOKEN_CHARS, min_size=1, max_size=20)
    .map(str.encode)
    .filter(lambda name: name.lower() not in FRAMING_HEADERS)
)
# field-vchar and inner spaces/tabs; no leading or trailing whitespace (h11 strips it)
header_values_st = st.builds(
    lambda middle, first, last: (first + middle + last).strip(b" \t"),
    st.binary(max_size=30).map(
        lambda b: bytes(c for c in b if c == 0x09 or 0x20 <= c <= 0x7E or c >= 0x80)
    ),
    st.sampled_from([b"", b"v"]),
    st.sampled_from([b"", b"z"]),
)
targets = st.builds(
    lambda segments, query: "/" + "/".join(segments) + (("?" + query) if query is not None else ""),
    st.lists(st.text("abcXYZ019-._~%!$&'()*+,;=:@", max_size=8), max_size=4),
    st.none() | st.text("abc019=&%+-._~/?", max_size=20),
)


@HYPOTHESIS
@given(
    method=st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"X-CUSTOM"]),
    target=targets,
    headers=st.lists(st.tuples(header_names, header_values_st), max_size=8),
    body=st.binary(max_size=64),
)
def test_random_requests_round_trip(
    method: bytes, target: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    """Any valid request from the h11 client comes out of HTTPConnection unchanged."""
    client = Client()
    extra = [(b"content-length", str(len(body)).encode())] if body else []
    data = client.request(method, target.encode(), headers + extra, body)
    server = HTTPConnection()
    events = receive(server, data)
    head = events[0]
    assert isinstance(head, RequestHead)
    assert head.method == method.decode()
    assert head.target == target
    assert head.path + ("?" + head.query_string if "?" in target else "") == target
    assert head.headers[1:] == tuple((name.lower(), value) for name, value in headers + extra)
    assert b"".join(e.data for e in events if isinstance(e, BodyData)) == body
    assert events[-1] == EndOfRequest()


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


interesting_bytes = st.lists(
    st.sampled_from(
        [
            b"GET / HTTP/1.1\r\n",
            b"POST /x HTTP/1.0\r\n",
            b"GET / HTTP/2.0\r\n",
            b"Host: a\r\n",
            b"Content-Length: 5\r\n",
            b"Content-Length: 99999999\r\n",
            b"Transfer-Encoding: chunked\r\n",
            b"Expect: 100-continue\r\n",
            b"Connection: close\r\n",
            b"\r\n",
            b"\r\n\r\n",
            b"5\r\nhello\r\n",
            b"0\r\n\r\n",
            b"hello",
            b"\x00",
            b"\xff",
            b" ",
            b":",
            b"\n",
        ]
    )
    | st.binary(max_size=16),
    max_size=20,
).map(b"".join)


@HYPOTHESIS
@given(data=interesting_bytes, cuts=st.lists(st.integers(0, 400), max_size=6), eof=st.booleans())
def test_arbitrary_bytes_yield_events_or_remote_protocol_error(
    data: bytes, cuts: list[int], eof: bool
) -> None:
    """Whatever bytes arrive, in whatever pieces, the core yields events or RemoteProtocolError."""
    server = HTTPConnection(max_head_bytes=256, max_body_bytes=64)
    try:
        for piece in _split(data, cuts):
            server.receive_data(piece)
            for event in server_events(server):
                assert isinstance(event, RequestHead | BodyData | EndOfRequest | ClientClosed)
        if eof:
            server.receive_eof()
            for event in server_events(server):
                assert isinstance(event, RequestHead | BodyData | EndOfRequest | ClientClosed)
    except RemoteProtocolError as error:
        assert 400 <= error.status_hint < 600
        assert not server.keep_alive
        server.send_error(error.status_hint)  # the answer can always be written
        assert server.data_to_send().startswith(b"HTTP/1.1 ")


@pytest.mark.parametrize("size", [0, 1, 15, 16, 255, 4096, 100_000])
def test_chunk_frame_is_what_h11_writes(size: int) -> None:
    """Going around h11 for broadcast chunks is only sound if the bytes are identical."""
    conn = HTTPConnection()
    conn.receive_data(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.next_event()
    conn.send_response(200, [(b"content-type", b"text/event-stream")])
    conn.data_to_send()
    assert conn.body_is_chunked
    data = b"d" * size
    conn.send_body(data)
    assert conn.data_to_send() == (chunk_frame(data) if size else b"")


@pytest.mark.parametrize(
    ("request_line", "headers", "chunked"),
    [
        (b"GET / HTTP/1.0", [], False),  # HTTP/1.0: delimited by close
        (b"HEAD / HTTP/1.1", [], False),  # no body at all
        (b"GET / HTTP/1.1", [(b"content-length", b"3")], False),
        (b"GET / HTTP/1.1", [], True),
    ],
)
def test_body_is_chunked_only_when_h11_chunks(
    request_line: bytes, headers: list[tuple[bytes, bytes]], chunked: bool
) -> None:
    conn = HTTPConnection()
    conn.receive_data(request_line + b"\r\nHost: x\r\n\r\n")
    conn.next_event()
    conn.send_response(200, headers)
    head = conn.data_to_send()
    assert conn.body_is_chunked is chunked
    assert (b"transfer-encoding: chunked" in head.lower()) is (chunked or b"HEAD" in request_line)


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        ("http://example.com/events?channel=a", "/events", "channel=a"),
        ("HTTPS://example.com:8443/a/b", "/a/b", ""),
        ("http://example.com", "/", ""),
        ("http://example.com?x=1", "/", "x=1"),
        ("/plain?x=1", "/plain", "x=1"),
    ],
)
def test_absolute_form_target_is_routed_by_its_path(target: str, path: str, query: str) -> None:
    """A server must accept the absolute-form target (RFC 9112 section 3.2.2): it routes on
    the path and query, and keeps the target as sent."""
    server = HTTPConnection()
    (head, _) = receive(server, raw(f"GET {target} HTTP/1.1", "Host: example.com"))
    assert isinstance(head, RequestHead)
    assert (head.target, head.path, head.query_string) == (target, path, query)
