"""How long an :class:`~rawstream.client.EventSource` waits before reconnecting.

The WHATWG spec waits the *reconnection time* (3 s by default, or what the server's last
``retry:`` field said) and lets user agents add "an exponential backoff delay" when attempts
keep failing.  Here:

    floor(0)  = base
    floor(n)  = max(base, min(min_backoff, max_backoff))              for n >= 1
    window(n) = max(floor(n), min(max_backoff, floor(n) * 2 ** (n + 1)))
    delay(n)  = uniform(floor(n), window(n))

where ``base`` is the reconnection time and ``n`` the number of failed attempts since the
last healthy connection (0 for the first reconnection after one).  This is full jitter (AWS,
"Exponential Backoff and Jitter") over ``[floor, window]`` instead of ``[0, window]``: the
server's ``retry:`` stays a floor, so a server that asked for 5 s never sees a client sooner,
while a crowd of clients dropped at the same moment (a restart) spreads out over the window
instead of returning together.  The window doubles with each failure up to ``max_backoff``;
a ``retry:`` above ``max_backoff`` is still honoured (the floor wins).

``min_backoff`` (1 s) keeps a tiny reconnection time from becoming a tight loop: the one
reconnection after a healthy stream honours ``retry: 0`` exactly (a server may ask for an
immediate reconnection), but once attempts fail the delay is at least ``min_backoff`` (or
``max_backoff``, if that is smaller) and doubles from there.  Without it, ``retry: 0`` and a
server that keeps failing would make ``base * 2 ** n`` zero forever: thousands of
connections a second.
"""

from __future__ import annotations

import random as _random

__all__ = ["Backoff"]

#: The longest reconnection time accepted from a server (a day), so a huge ``retry:`` value
#: cannot overflow the conversion to seconds.
MAX_RECONNECTION_TIME = 86_400.0


def reconnection_time(milliseconds: int) -> float:
    """A server's ``retry:`` value as seconds, at most :data:`MAX_RECONNECTION_TIME`."""
    return min(milliseconds / 1000, MAX_RECONNECTION_TIME)


class Backoff:
    """The reconnection policy: reconnection time, consecutive failures, jittered delay.

    Args:
        retry: the reconnection time in seconds until the server sends ``retry:``.
        max_backoff: the cap of the growing window, in seconds.
        min_backoff: the least delay once attempts fail, in seconds, when the reconnection
            time is shorter (capped by ``max_backoff``).
        random: the source of jitter (a seeded ``random.Random`` makes delays reproducible).
    """

    def __init__(
        self,
        *,
        retry: float = 3.0,
        max_backoff: float = 30.0,
        min_backoff: float = 1.0,
        random: _random.Random | None = None,
    ) -> None:
        if not (retry >= 0 and max_backoff >= 0 and min_backoff >= 0):  # NaN is refused too
            raise ValueError("retry, max_backoff and min_backoff must not be negative")
        self.retry = retry
        self.max_backoff = max_backoff
        self.min_backoff = min_backoff
        self.failures = 0
        self._random = random if random is not None else _random.Random()

    def set_retry_ms(self, milliseconds: int) -> None:
        """Take the server's ``retry:`` field (milliseconds) as the new reconnection time."""
        self.retry = reconnection_time(milliseconds)

    def window(self, failures: int | None = None) -> tuple[float, float]:
        """The range ``(low, high)`` the next delay is drawn from."""
        n = self.failures if failures is None else failures
        base = self.retry
        if n > 0:  # failing: never faster than min_backoff (unless the cap is lower)
            base = max(base, min(self.min_backoff, self.max_backoff))
        # 2 ** 64 is far past any cap; stopping there keeps the float finite.
        high = max(base, min(self.max_backoff, base * 2.0 ** min(n + 1, 64)))
        return base, high

    def next_delay(self) -> float:
        """A delay drawn from the current window."""
        low, high = self.window()
        return self._random.uniform(low, high)

    def failed(self) -> None:
        """An attempt failed, or a connection ended before it proved healthy."""
        self.failures += 1

    def succeeded(self) -> None:
        """A connection proved healthy: start again from the reconnection time."""
        self.failures = 0
