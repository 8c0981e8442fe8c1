"""gzip for event streams: every event decodable the moment it arrives (RFC 1952, zlib).

A gzip response body is one deflate stream.  Compressing each event and then flushing with
``Z_SYNC_FLUSH`` ends the output on a byte boundary with everything so far decodable, so a
client's incremental decoder yields the event at once instead of waiting for more input.  The
compressor keeps its 32 KiB window across events, which is where the savings on repetitive
event streams come from.  That state is also why compressed events cannot be dropped one by
one: a stream under the ``DROP_OLDEST`` policy is not compressed.
"""

from __future__ import annotations

import zlib

__all__ = ["GzipEventEncoder", "accepts_gzip"]


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (RFC 9110 section 12.5.3): an explicit
    ``gzip`` entry decides; otherwise ``*`` does."""
    if not accept_encoding:
        return False
    weights: dict[str, float] = {}
    for item in accept_encoding.lower().split(","):
        coding, _, params = item.strip().partition(";")
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[coding.strip()] = weight
    for coding in ("gzip", "x-gzip", "*"):
        if coding in weights:
            return weights[coding] > 0
    return False


class GzipEventEncoder:
    """Compresses a stream of events into one gzip body, flushing after each event.

    Args:
        level: zlib compression level (1 fastest to 9 smallest; 6 is zlib's default).
    """

    def __init__(self, level: int = 6) -> None:
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def encode(self, data: bytes) -> bytes:
        """The compressed bytes of ``data``, complete enough to decode on arrival."""
        return self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)

    def finish(self, data: bytes = b"") -> bytes:
        """The compressed ``data`` and the gzip trailer: the last bytes of the body."""
        return self._compressor.compress(data) + self._compressor.flush(zlib.Z_FINISH)
