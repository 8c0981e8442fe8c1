"""The reconnection policy alone: floor, doubling window, cap, reset, jitter source."""

from __future__ import annotations

import random

import pytest

from rawstream.client import Backoff

from .conftest import FixedRandom


def test_window_doubles_from_the_reconnection_time_up_to_the_cap() -> None:
    """The window's top is retry * 2 ** (failures + 1), capped at max_backoff."""
    backoff = Backoff(retry=1.0, max_backoff=10.0)
    assert [backoff.window(n) for n in range(5)] == [
        (1.0, 2.0),
        (1.0, 4.0),
        (1.0, 8.0),
        (1.0, 10.0),
        (1.0, 10.0),
    ]


def test_server_retry_above_the_cap_is_still_the_floor() -> None:
    """A ``retry:`` longer than max_backoff is honoured: the client never comes back sooner."""
    backoff = Backoff(max_backoff=30.0)
    backoff.set_retry_ms(60_000)
    assert backoff.window(5) == (60.0, 60.0)


def test_failures_count_and_success_resets() -> None:
    """Each failure widens the window; a success starts again from the floor."""
    backoff = Backoff(retry=2.0, max_backoff=100.0, random=FixedRandom(1.0))
    delays = []
    for _ in range(3):
        backoff.failed()
        delays.append(backoff.next_delay())
    backoff.succeeded()
    delays.append(backoff.next_delay())
    assert delays == [8.0, 16.0, 32.0, 4.0]


def test_delays_are_drawn_from_the_window() -> None:
    """With a real random source every delay lies in its window, and they differ."""
    backoff = Backoff(retry=3.0, max_backoff=30.0, random=random.Random(1))
    draws = []
    for _ in range(6):
        backoff.failed()
        low, high = backoff.window()
        delay = backoff.next_delay()
        assert low <= delay <= high
        draws.append(delay)
    assert len(set(draws)) == len(draws)


def test_huge_retry_is_clamped_and_many_failures_stay_finite() -> None:
    """Absurd inputs give finite delays (a day at most from the server's side)."""
    backoff = Backoff(max_backoff=30.0)
    backoff.set_retry_ms(10**18)
    assert backoff.retry == 86_400.0
    assert Backoff(retry=1.0, max_backoff=30.0).window(10_000) == (1.0, 30.0)


def test_negative_settings_are_refused() -> None:
    """A negative reconnection time or cap is a programming error."""
    with pytest.raises(ValueError):
        Backoff(retry=-1)
    with pytest.raises(ValueError):
        Backoff(min_backoff=-1)
    with pytest.raises(ValueError):
        Backoff(retry=float("nan"))


def test_a_tiny_reconnection_time_still_backs_off_when_attempts_fail() -> None:
    """retry: 0 is honoured once after a healthy stream, but failures start from min_backoff
    and double from there (a zero base would stay zero forever)."""
    backoff = Backoff(retry=0.0, max_backoff=30.0, min_backoff=1.0)
    assert [backoff.window(n) for n in range(6)] == [
        (0.0, 0.0),
        (1.0, 4.0),
        (1.0, 8.0),
        (1.0, 16.0),
        (1.0, 30.0),
        (1.0, 30.0),
    ]
    capped = Backoff(retry=0.01, max_backoff=0.2, min_backoff=1.0)
    assert capped.window(0) == (0.01, 0.02)
    assert capped.window(3) == (0.2, 0.2)  # the cap wins over min_backoff
    backoff.set_retry_ms(5000)  # above min_backoff: the floor is the server's again
    assert backoff.window(1) == (5.0, 20.0)
