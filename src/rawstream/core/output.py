"""The outgoing buffer every sans-IO core keeps (see ``data_to_send()``).

A list of the pieces h11 and wsproto return, joined only when several are waiting: on the hot
path one event is one piece, and its bytes reach the server's outbox without being copied.
"""

from __future__ import annotations

__all__ = ["OutputBuffer"]


class OutputBuffer:
    """Bytes a core produced and the I/O layer has not taken yet."""

    __slots__ = ("_pieces",)

    def __init__(self) -> None:
        self._pieces: list[bytes] = []

    def write(self, data: bytes | None) -> None:
        """Add ``data`` (empty pieces, and h11's None, are ignored)."""
        if data:
            self._pieces.append(data)

    def __bool__(self) -> bool:
        """Bytes are waiting to be taken."""
        return bool(self._pieces)

    def take(self) -> bytes:
        """Everything written since the last take, as one ``bytes``."""
        pieces = self._pieces
        if not pieces:
            return b""
        self._pieces = []
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)
