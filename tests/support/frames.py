"""WebSocket frames as a client writes them, byte for byte, for hostile-input tests."""

from __future__ import annotations

import struct

__all__ = ["client_frame"]


def client_frame(first_byte: int, payload: bytes, mask: bytes = b"\x00\x00\x00\x00") -> bytes:
    """A masked client frame of any length with the given first byte (FIN, RSV bits, opcode).
    The default all-zero mask leaves the payload as is on the wire."""
    size = len(payload)
    if size < 126:
        length = bytes([0x80 | size])
    elif size < 1 << 16:
        length = b"\xfe" + struct.pack("!H", size)
    else:
        length = b"\xff" + struct.pack("!Q", size)
    if any(mask):
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([first_byte]) + length + mask + payload
