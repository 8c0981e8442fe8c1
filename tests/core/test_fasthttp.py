"""The HTTP/1.1 fast path (rawstream.core.fasthttp) gives exactly what h11 gives, or hands over.

Three proofs, by hypothesis, against h11 itself:

* a request head the fast path reads is h11's ``Request`` (method, target, version, headers,
  keep-alive) followed by its ``EndOfMessage``, with the same bytes left over; where it asks
  for more bytes, h11 does too;
* a response it frames is byte for byte what h11 writes for the same response;
* a whole connection (pipelined, mutated, hostile requests in random pieces, answered in the
  ways the server answers) driven through ``HTTPConnection`` with the fast path and without
  it gives the same events, the same errors and the same bytes out.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import h11
from hypothesis import given
from hypothesis import strategies as st

from rawstream.core import (
    NEED_DATA,
    ClientClosed,
    EndOfRequest,
    HTTPConnection,
    LocalProtocolError,
    RemoteProtocolError,
    RequestHead,
    fasthttp,
    reason_phrase,
)
from rawstream.core.fasthttp import NEED_MORE, SimpleHead, frame_simple_response, parse_simple_head

from .test_fuzz import cuts_st, fuzz, mutated, random_http_bytes, split, valid_request

MAX_HEAD = 1024

# -- request heads: parts an attacker or a sloppy client might send ------------------------------

methods = st.sampled_from([b"GET", b"HEAD", b"POST", b"OPTIONS", b"get", b"G ET", b"", b"M\x00"])
targets = st.sampled_from(
    [b"/", b"/healthz", b"/a?b=c&d", b"*", b"http://h/p?q", b"/a b", b"/\x7f", b"/\xff", b""]
)
versions = st.sampled_from(
    [b"HTTP/1.1"] * 4 + [b"HTTP/1.0", b"HTTP/2.0", b"http/1.1", b"HTTP/1.1 "]
)
names = st.sampled_from(
    [
        b"Host",
        b"host",
        b"HOST",
        b"User-Agent",
        b"Accept",
        b"X-A",
        b"Connection",
        b"Content-Length",
        b"Transfer-Encoding",
        b"Expect",
        b"Upgrade",
        b"Bad Name",
        b"",
        b"x\x00",
        b"\xc3\xa9",
    ]
)
values = st.sampled_from(
    [
        b"a",
        b"127.0.0.1:8080",
        b"*/*",
        b"close",
        b"Close",
        b"keep-alive",
        b"upgrade",
        b"0",
        b"5",
        b"chunked",
        b"100-continue",
        b"",
        b"a b",
        b" padded ",
        b"\ttab",
        b"x\x00y",
        b"x\x7fy",
        b"caf\xc3\xa9",
        b"a\rb",
        b"close, keep-alive",
    ]
) | st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12).map(str.encode)
separators = st.sampled_from([b": ", b":", b":\t", b" : ", b":  "])
line_ends = st.sampled_from([b"\r\n"] * 8 + [b"\n", b"\r", b"\r\r\n"])


@st.composite
def request_heads(draw: st.DrawFn) -> bytes:
    """A request head built from likely and unlikely parts, maybe followed by more bytes."""
    end = draw(line_ends)
    line = draw(methods) + b" " + draw(targets) + b" " + draw(versions)
    head = line + end
    if draw(st.booleans()):
        head += b"Host: example.com" + end
    for name, sep, value, fold in draw(
        st.lists(st.tuples(names, separators, values, st.booleans()), max_size=5)
    ):
        head += name + sep + value + end
        if fold and draw(st.integers(0, 9)) == 0:
            head += b" folded" + end  # obs-fold
    head += draw(st.sampled_from([b"\r\n"] * 6 + [b"\n", b"", b"\r"]))
    return head + draw(st.sampled_from([b"", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"x"]))


def h11_request(data: bytes) -> tuple[list[object], bytes] | None:
    """h11's events for ``data`` as a server reads it (up to NEED_DATA or PAUSED), and the
    bytes it left; None when it refuses them."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    if data:  # (b"" is EOF to h11)
        conn.receive_data(data)
    events: list[object] = []
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                break
            events.append(event)
    except h11.RemoteProtocolError:
        return None
    return events, bytes(conn.trailing_data[0])


@fuzz(1000)
@given(data=request_heads() | random_http_bytes | st.binary(max_size=200))
def test_a_head_read_by_the_fast_path_is_h11s(data: bytes) -> None:
    fast = parse_simple_head(data, MAX_HEAD)
    h11_says = h11_request(data)
    if fast is None:
        return  # handed over: h11 reads these bytes (whatever it makes of them)
    assert h11_says is not None, "the fast path read a head h11 refuses"
    events, rest = h11_says
    if fast is NEED_MORE:
        assert events == [], "h11 read a head where the fast path waits for more"
        return
    assert isinstance(fast, SimpleHead)
    request, end = events[:2]
    assert isinstance(request, h11.Request) and isinstance(end, h11.EndOfMessage)
    assert (fast.method, fast.target, b"1.1") == (
        request.method,
        request.target,
        request.http_version,
    )
    assert fast.headers == list(request.headers)
    assert data[fast.length :] == rest
    connection = b",".join(v for k, v in request.headers if k == b"connection").lower()
    assert fast.close == (b"close" in connection)


def test_the_common_heads_take_the_fast_path() -> None:
    """What wrk, curl and browsers send is read without h11, and a plain answer framed
    without it (or the proofs here would hold for a fast path that never runs)."""
    for head in (
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n",
        b"HEAD /x?y=1 HTTP/1.1\r\nhost: a\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nAccept-Language: en;q=0.9\r\n\r\n",
    ):
        assert isinstance(parse_simple_head(head, MAX_HEAD), SimpleHead), head
    framed = frame_simple_response(
        200, b"OK", [(b"content-type", b"text/plain")], b"ok", head_request=False, close=False
    )
    assert framed == b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"
    assert parse_simple_head(b"GET / HTTP/1.1\r\nHo", MAX_HEAD) is NEED_MORE
    assert parse_simple_head(b"", MAX_HEAD) is NEED_MORE
    for other in (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi",
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"GET / HTTP/1.1\nHost: a\n\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # no Host
    ):
        assert parse_simple_head(other, MAX_HEAD) is None, other


# -- responses -------------------------------------------------------------------------------------

response_names = st.sampled_from(
    [
        b"content-type",
        b"Content-Type",
        b"x-a",
        b"cache-control",
        b"Connection",
        b"Host",
        b"Transfer-Encoding",
        b"Content-Length",
        b"set-cookie",
        b"bad name",
        b"",
        b"x\x00",
    ]
)
response_values = st.sampled_from(
    [
        b"text/plain; charset=utf-8",
        b"no-cache",
        b"",
        b"a b",
        b" x",
        b"x ",
        b"a\r\nb",
        b"\x80",
        b"close",
        b"chunked",
        b"1",
    ]
)


@fuzz(500)
@given(
    status=st.sampled_from([200, 201, 204, 304, 404, 418, 500, 299, 100, 101, 600, 999]),
    headers=st.lists(st.tuples(response_names, response_values), max_size=4),
    body=st.binary(max_size=32),
    head_request=st.booleans(),
    close=st.booleans(),
)
def test_a_response_framed_by_the_fast_path_is_h11s(
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    head_request: bool,
    close: bool,
) -> None:
    fast = frame_simple_response(
        status, reason_phrase(status), headers, body, head_request=head_request, close=close
    )
    if fast is None:
        return  # h11 frames it
    conn = h11.Connection(h11.SERVER)
    method = b"HEAD" if head_request else b"GET"
    conn.receive_data(
        method
        + b" / HTTP/1.1\r\nHost: a\r\n"
        + (b"Connection: close\r\n" if close else b"")
        + b"\r\n"
    )
    assert isinstance(conn.next_event(), h11.Request)
    framed = (
        conn.send(
            h11.Response(
                status_code=status,
                headers=[*headers, (b"content-length", str(len(body)).encode())],
                reason=reason_phrase(status),
            )
        )
        or b""
    )
    if not head_request and body:  # (the core drops a HEAD's body, as h11 would refuse it)
        framed += conn.send(h11.Data(data=body)) or b""
    framed += conn.send(h11.EndOfMessage()) or b""
    assert fast == framed


def test_header_lines_are_kept_only_when_valid_and_only_a_few_hundred() -> None:
    """The framed-line cache never lets a refused header through and never grows past its
    bound, however many distinct headers responses carry."""
    frame = partial(frame_simple_response, 200, b"OK", body=b"", head_request=False, close=False)
    for _ in range(2):
        assert frame([(b"bad name", b"x")]) is None
        assert frame([(b"x", b"a\r\nb")]) is None
        assert frame([(b"connection", b"close")]) is None
    for n in range(2 * fasthttp.HEADER_LINES_KEPT):
        assert frame([(b"x-n", b"%d" % n)]) is not None
    assert len(fasthttp._HEADER_LINES) <= fasthttp.HEADER_LINES_KEPT
    assert all(b"bad" not in name and b"\r" not in value for name, value in fasthttp._HEADER_LINES)


# -- whole connections: with the fast path and without it ----------------------------------------

Answer = st.sampled_from(["whole", "whole-with-headers", "streamed", "error", "read-body"])


def drive(
    server: HTTPConnection, pieces: list[bytes], eof: bool, answers: list[str]
) -> list[object]:
    """Drive ``server`` as the server layer does and log everything observable."""
    log: list[object] = []
    feeds: list[Callable[[], None]] = [partial(server.receive_data, p) for p in pieces]
    if eof:
        feeds.append(server.receive_eof)
    turn = 0
    try:
        for feed in feeds:
            feed()
            while True:
                event = server.next_event()
                log.append(("event", repr(event), server.buffered_bytes))
                if event is NEED_DATA or isinstance(event, ClientClosed):
                    break
                if not isinstance(event, RequestHead):
                    continue
                answer = answers[turn % len(answers)]
                turn += 1
                if answer == "read-body":  # the handler reads the body first
                    while not isinstance(body := server.next_event(), EndOfRequest):
                        log.append(("body", repr(body)))
                        if body is NEED_DATA:
                            return log  # (the rest is the driver's waiting: not modelled)
                if answer == "whole" or answer == "read-body":
                    server.send_whole_response(200, [(b"content-type", b"text/plain")], b"ok")
                elif answer == "whole-with-headers":
                    server.send_whole_response(404, [(b"Connection", b"close")], b"no")
                elif answer == "streamed":
                    server.send_response(200, [(b"content-type", b"text/event-stream")])
                    server.send_body(b"data: x\n\n")
                    server.end_response()
                else:
                    server.send_error(503, "busy", close=False)
                # (Not keep_alive yet: h11 says no until the body's end is taken below, the fast
                # path knows a bodiless request's body is empty.)
                log.append(("out", server.data_to_send(), server.will_close))
                while server.body_unread:  # what the handler left of the body
                    if server.next_event() in (NEED_DATA, EndOfRequest()):
                        break
                log.append(("reuse", server.keep_alive))
                if not server.keep_alive:
                    return log
                server.start_next_cycle()
    except RemoteProtocolError as error:
        log.append(("error", error.status_hint, str(error)))
        if not server.response_started:
            server.send_error(error.status_hint, str(error), error.headers)
            log.append(("out", server.data_to_send()))
    except LocalProtocolError as error:
        log.append(("local error", str(error)))
    return log


def connection(fast_path: bool) -> HTTPConnection:
    return HTTPConnection(
        max_head_bytes=MAX_HEAD,
        max_request_line_bytes=64,
        max_header_count=4,
        max_body_bytes=64,
        fast_path=fast_path,
    )


@fuzz(400)
@given(
    requests=st.lists(request_heads() | valid_request(), min_size=1, max_size=4),
    mutate=st.booleans(),
    cuts=cuts_st,
    eof=st.booleans(),
    answers=st.lists(Answer, min_size=1, max_size=4),
    data=st.data(),
)
def test_a_connection_is_the_same_with_the_fast_path_and_without(
    requests: list[bytes],
    mutate: bool,
    cuts: list[int],
    eof: bool,
    answers: list[str],
    data: st.DataObject,
) -> None:
    stream = b"".join(requests)
    if mutate:
        stream = data.draw(mutated(stream))
    pieces = split(stream, cuts)
    assert drive(connection(True), pieces, eof, answers) == drive(
        connection(False), pieces, eof, answers
    )


def test_heads_at_the_size_limit_are_refused_as_without_the_fast_path() -> None:
    """The fast path's own limit check (a bound on the size the exact check counts) agrees
    with h11's path at the edge: heads a byte either side of max_head_bytes, with and
    without a space after each colon (which the exact count assumes)."""

    def tight(fast_path: bool, max_head: int) -> HTTPConnection:
        return HTTPConnection(
            max_head_bytes=max_head,
            max_request_line_bytes=64,
            max_header_count=8,
            max_body_bytes=64,
            fast_path=fast_path,
        )

    for separator in (b": ", b":"):
        for pad in range(0, 12):
            head = (
                b"GET /"
                + b"p" * pad
                + b" HTTP/1.1\r\nHost"
                + separator
                + b"a\r\n"
                + b"X-A"
                + separator
                + b"1\r\nX-B"
                + separator
                + b"2\r\n\r\n"
            )
            for max_head in range(len(head) - 4, len(head) + 4):
                fast = drive(tight(True, max_head), [head], False, ["whole"])
                plain = drive(tight(False, max_head), [head], False, ["whole"])
                assert fast == plain, (head, max_head)
