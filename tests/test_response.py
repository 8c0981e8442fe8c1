"""Response headers as the HTTP core takes them (encoded once per distinct pair, bounded)."""

from __future__ import annotations

import pytest

from rawstream import Response, response


def test_headers_are_encoded_lower_cased_and_in_order_every_time() -> None:
    for _ in range(2):  # (the second time from the kept encodings)
        headers = Response.text("ok", headers=[("X-Trace", "a b"), ("Cache-Control", "no-store")])
        assert headers.encoded_headers() == [
            (b"x-trace", b"a b"),
            (b"cache-control", b"no-store"),
            (b"content-type", b"text/plain; charset=utf-8"),
        ]


def test_the_kept_encodings_are_bounded_and_a_bad_value_still_fails() -> None:
    for n in range(2 * response.ENCODED_KEPT):
        assert Response(b"", headers={"x-n": str(n)}).encoded_headers() == [(b"x-n", b"%d" % n)]
    assert len(response._ENCODED) <= response.ENCODED_KEPT
    for _ in range(2):
        with pytest.raises(UnicodeEncodeError):
            Response(b"", headers={"x-bad": "\u20ac"}).encoded_headers()
