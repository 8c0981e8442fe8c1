"""The WebSocket fast path beside wsproto: small whole data frames, in and out.

Most WebSocket traffic is small whole messages: a chat line, a JSON update, an echo.  wsproto
reads each one through a general frame parser (a generator, a buffer object, a masker object,
an incremental UTF-8 decoder, extension hooks), about 20 microseconds of a 64-byte echo.  For a
connection with no extension, :func:`read_small_frames` reads the common frame itself: FIN set,
no RSV bit, text or binary, masked, a payload under 126 bytes, wholly in the buffer, and, for
text, valid UTF-8 within the message limit.  At the first byte of anything else it stops and
the caller hands the rest, from that byte, to wsproto, which then sees exactly the bytes it
would have seen from there.  :func:`frame_message` writes a whole unmasked frame as wsproto's
``FrameProtocol.send_data`` does with no extension.

``tests/core/test_fastws.py`` proves both against wsproto with hypothesis: the same events,
the same close codes and the same output, however the bytes are cut.
"""

from __future__ import annotations

__all__ = ["frame_message", "read_small_frames"]

_TEXT_FRAME = 0x81  # FIN, no RSV bit, opcode 1
_BINARY_FRAME = 0x82  # FIN, no RSV bit, opcode 2


def read_small_frames(data: bytes, max_message_bytes: int, messages: list[str | bytes]) -> int:
    """Append to ``messages`` each small whole data frame at the start of ``data``; return
    how many bytes they took (the rest, from the first frame not taken, is wsproto's)."""
    start, end = 0, len(data)
    while end - start >= 6:
        first, second = data[start], data[start + 1]
        length = second & 0x7F
        if (
            (first != _TEXT_FRAME and first != _BINARY_FRAME)
            or not second & 0x80  # unmasked (a protocol error: wsproto answers it)
            or length > 125  # 126 and 127 announce a longer length
            or length > max_message_bytes
        ):
            break
        stop = start + 6 + length
        if stop > end:
            break
        mask = int.from_bytes(data[start + 2 : start + 6] * ((length >> 2) + 1), "big")
        unmasked = int.from_bytes(data[start + 6 : stop], "big") ^ (
            mask >> (8 * (((length >> 2) + 1) * 4 - length))
        )
        payload = unmasked.to_bytes(length, "big")
        if first == _TEXT_FRAME:
            try:
                messages.append(payload.decode())
            except UnicodeDecodeError:
                break  # wsproto closes with 1007
        else:
            messages.append(payload)
        start = stop
    return start


def frame_message(data: str | bytes) -> bytes:
    """A whole unmasked, uncompressed message frame: the bytes wsproto writes for it."""
    if isinstance(data, str):
        payload, first = data.encode(), _TEXT_FRAME
    elif isinstance(data, bytes | bytearray | memoryview):
        payload, first = bytes(data), _BINARY_FRAME
    else:
        raise TypeError(f"a WebSocket message is str or bytes, not {type(data).__name__}")
    length = len(payload)
    if length <= 125:
        return bytes((first, length)) + payload
    if length <= 0xFFFF:
        return bytes((first, 126)) + length.to_bytes(2, "big") + payload
    return bytes((first, 127)) + length.to_bytes(8, "big") + payload
