"""How long an :class:`~rawstream.client.EventSource` waits before reconnecting.

The WHATWG spec waits the *reconnection time* (3 s by default, or what the server's last
``retry:`` field said) and lets user agents add "an exponential backoff delay" when attempts
keep failing.  Here:

    window(n) = max(base, min(max_backoff, base * 2 ** (n + 1)))
    delay(n)  = uniform(base, window(n))

where ``base`` is the reconnection time and ``n`` the number of failed attempts since the
last healthy connection (0 for the first reconnection after one).  This is full jitter (AWS,
"Exponential Backoff and Jitter") over ``[base, window]`` instead of ``[0, window]``: the
server's ``retry:`` stays a floor, so a server that asked for 5 s never sees a client sooner,
while a crowd of clients dropped at the same moment (a restart) spreads out over the window
instead of returning together.  The window doubles with each failure up to ``max_backoff``;
a ``retry:`` above ``max_backoff`` is still honoured (the floor wins).
"""

from __future__ import annotations

import random as _random

__all__ = ["Backoff"]

#: The longest reconnection time accepted from a server (a day), so a huge ``retry:`` value
#: cannot overflow the conversion to seconds.
MAX_RECONNECTION_TIME = 86_400.0


class Backoff:
    """The reconnection policy: reconnection time, consecutive failures, jittered delay.

    Args:
        retry: the reconnection time in seconds until the server sends ``retry:``.
        max_backoff: the cap of the growing window, in seconds.
        random: the source of jitter (a seeded ``random.Random`` makes delays reproducible).
    """

    def __init__(
        self,
        *,
        retry: float = 3.0,
        max_backoff: float = 30.0,
        random: _random.Random | None = None,
    ) -> None:
        if retry < 0 or max_backoff < 0:
            raise ValueError("retry and max_backoff must not be negative")
        self.retry = retry
        self.max_backoff = max_backoff
        self.failures = 0
        self._random = random if random is not None else _random.Random()

    def set_retry_ms(self, milliseconds: int) -> None:
        """Take the server's ``retry:`` field (milliseconds) as the new reconnection time."""
        self.retry = min(milliseconds / 1000, MAX_RECONNECTION_TIME)

    def window(self, failures: int | None = None) -> tuple[float, float]:
        """The range ``(low, high)`` the next delay is drawn from."""
        n = self.failures if failures is None else failures
        base = self.retry
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
