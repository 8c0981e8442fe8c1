"""The server's timeouts (Timers), on a virtual clock (MockClock autojump): no real sleeps."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from rawstream.server.timers import COMPACT_SLACK, Timers


async def test_a_timer_fires_at_its_deadline_and_not_before(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    timers = Timers()
    await nursery.start(timers.run)
    fired: list[float] = []
    start = trio.current_time()
    timers.start(5, lambda: fired.append(trio.current_time() - start))
    await trio.sleep(4.9)
    assert fired == []
    await trio.sleep(0.2)
    assert fired == [pytest.approx(5)]
    assert timers.running == 0


async def test_a_cancelled_timer_never_fires(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    timers = Timers()
    await nursery.start(timers.run)
    fired: list[str] = []
    timer = timers.start(5, lambda: fired.append("cancelled"))
    timers.start(6, lambda: fired.append("kept"))
    await trio.sleep(1)
    timer.cancel()
    assert not timer.running
    await trio.sleep(10)
    assert fired == ["kept"]


async def test_a_shorter_timer_wakes_the_task_sleeping_for_a_longer_one(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """Lengths have queues of their own: a new short timer fires before an older long one."""
    timers = Timers()
    await nursery.start(timers.run)
    fired: list[tuple[str, float]] = []
    start = trio.current_time()
    timers.start(60, lambda: fired.append(("long", trio.current_time() - start)))
    await trio.sleep(1)
    timers.start(2, lambda: fired.append(("short", trio.current_time() - start)))
    await trio.sleep(100)
    assert fired == [("short", pytest.approx(3)), ("long", pytest.approx(60))]


async def test_timers_started_before_the_task_runs_fire(
    autojump_clock: trio.testing.MockClock,
) -> None:
    timers = Timers()
    fired: list[float] = []
    start = trio.current_time()
    timers.start(3, lambda: fired.append(trio.current_time() - start))
    async with trio.open_nursery() as nursery:
        await trio.sleep(1)
        await nursery.start(timers.run)
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert fired == [pytest.approx(3)]


async def test_a_failing_callback_is_logged_and_the_others_still_fire(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    timers = Timers()
    await nursery.start(timers.run)
    fired: list[str] = []

    def fail() -> None:
        raise RuntimeError("boom")

    timers.start(1, fail)
    timers.start(1, lambda: fired.append("second"))
    with caplog.at_level(logging.ERROR, logger="rawstream.server"):
        await trio.sleep(2)
    assert fired == ["second"]
    assert "a timeout's callback failed" in caplog.text


async def test_cancelled_timers_do_not_pile_up(autojump_clock: trio.testing.MockClock) -> None:
    """A wait per request, each cancelled in time: the queue stays near the live count, not
    the number of requests (no task runs, so only compaction can drop them)."""
    timers = Timers()
    live = [timers.start(30, lambda: None) for _ in range(10)]
    for _ in range(10_000):
        timers.start(30, lambda: None).cancel()
    queue = timers._queues[30]
    assert queue.live == len(live) == timers.running
    assert len(queue.timers) <= 2 * len(live) + COMPACT_SLACK + 1
