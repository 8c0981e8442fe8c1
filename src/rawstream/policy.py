"""What to do with a consumer that cannot keep up (no trio here: routes name it too)."""

from __future__ import annotations

import enum

__all__ = ["SLOW_CONSUMER_CLOSE_CODE", "SlowConsumer", "SlowConsumerPolicy"]

#: The WebSocket close code sent to a consumer disconnected for being too slow: 1013, "Try
#: Again Later" (IANA WebSocket close-code registry): the condition is temporary, so reconnect.
SLOW_CONSUMER_CLOSE_CODE = 1013


class SlowConsumer(enum.Enum):
    """The policy applied when a stream's outbox is full.

    * ``BLOCK``: the sender waits for room, up to ``send_timeout``; then as ``DISCONNECT``.
    * ``DISCONNECT``: end the stream at once.  An SSE stream ends with a ``retry:`` hint, so the
      client reconnects and resumes from ``Last-Event-ID``; a WebSocket closes with 1013.
    * ``DROP_OLDEST``: drop the queued events not yet being written and send a gap marker in
      their place (SSE: an event of type ``gap``; WebSocket: ``{"type":"gap","dropped":N}``),
      so the client knows what it missed.
    """

    BLOCK = "block"
    DISCONNECT = "disconnect"
    DROP_OLDEST = "drop_oldest"


class SlowConsumerPolicy:
    """Holds a stream's policy; refuses ``DROP_OLDEST`` where queued frames depend on each
    other (gzip, deflate with context takeover): dropping one would corrupt the rest."""

    _slow_consumer: SlowConsumer

    def _frames_depend_on_each_other(self) -> bool:
        raise NotImplementedError

    @property
    def slow_consumer(self) -> SlowConsumer:
        """What a full outbox means for this stream (see :class:`SlowConsumer`)."""
        return self._slow_consumer

    @slow_consumer.setter
    def slow_consumer(self, policy: SlowConsumer) -> None:
        if policy is SlowConsumer.DROP_OLDEST and self._frames_depend_on_each_other():
            raise ValueError(
                "DROP_OLDEST needs events that stand alone on the wire; this stream's are "
                "compressed together (choose DROP_OLDEST on the route to avoid that)"
            )
        self._slow_consumer = policy
