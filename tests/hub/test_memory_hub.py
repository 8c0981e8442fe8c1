"""The in-memory hub through its public API: live delivery, replay, resets, slow consumers.

No sockets here: subscriptions are consumed directly (the SSE and WebSocket routes over real
clients are in tests/e2e/test_channels.py and tests/e2e/test_rooms.py).
"""

from __future__ import annotations

import random

import pytest
import trio
import trio.lowlevel

from rawstream.hub import HistoryLimits, Hub, Message, Reset, Subscription

from .conftest import ids, take


async def test_live_delivery_in_order_with_increasing_ids() -> None:
    hub = Hub()
    async with hub.subscribe("news") as subscription:
        published = [await hub.publish("news", f"m{i}") for i in range(5)]
        items = await take(subscription, 5)
    assert ids(items) == published
    numbers = [int(i.rpartition("-")[2]) for i in published]
    assert numbers == sorted(numbers) and len(set(numbers)) == 5
    assert [m.data for m in items if isinstance(m, Message)] == [f"m{i}" for i in range(5)]


async def test_text_and_bytes_payloads() -> None:
    hub = Hub()
    async with hub.subscribe("bin") as subscription:
        await hub.publish("bin", b"\x00\xffraw", event="blob")
        await hub.publish("bin", "text")
        first, second = await take(subscription, 2)
    assert isinstance(first, Message) and first.data == b"\x00\xffraw"
    assert first.sse.endswith(b"data: AP9yYXc=\n\n")  # SSE is text: bytes go base64
    assert b"event: blob\n" in first.sse
    assert isinstance(second, Message) and second.data == "text"
    assert '"data_b64":"AP9yYXc="' in first.ws_text


async def test_a_new_subscriber_starts_with_the_next_message() -> None:
    hub = Hub()
    await hub.publish("news", "before")
    async with hub.subscribe("news") as subscription:
        after = await hub.publish("news", "after")
        assert ids(await take(subscription, 1)) == [after]


async def test_replay_from_last_event_id_then_live() -> None:
    hub = Hub()
    published = [await hub.publish("news", str(i)) for i in range(10)]
    async with hub.subscribe("news", last_event_id=published[3]) as subscription:
        replayed = await take(subscription, 6)
        live = await hub.publish("news", "live")
        assert ids(await take(subscription, 1)) == [live]
    assert ids(replayed) == published[4:]


async def test_resume_race_no_gap_no_duplicate() -> None:
    """Subscribers resume from random past ids while a publisher keeps publishing: each sees
    every id after its starting point exactly once, in order."""
    hub = Hub(HistoryLimits(max_messages=10_000))
    published: list[str] = []
    results: dict[int, tuple[int, list[str]]] = {}

    async def publisher() -> None:
        for i in range(600):
            published.append(await hub.publish("race", str(i)))
            if i % 7 == 0:
                await trio.lowlevel.checkpoint()  # let subscribers in at varied points

    rng = random.Random(4)

    async def subscriber(index: int) -> None:
        for _ in range(rng.randrange(100)):  # join at a varied point of the publishing
            await trio.lowlevel.checkpoint()
        while not published:
            await trio.lowlevel.checkpoint()
        # Never from the last message itself: nothing would follow it, and the loop below
        # waits for "599" (a late subscriber starting there used to hang the test).
        start = rng.randrange(min(len(published), 599))
        async with hub.subscribe("race", last_event_id=published[start]) as subscription:
            seen: list[str] = []
            async for item in subscription:
                assert isinstance(item, Message)
                seen.append(item.id)
                if rng.random() < 0.1:
                    await trio.lowlevel.checkpoint()  # consumers of varied speed
                if item.data == "599":  # the last one
                    break
        results[index] = (start, seen)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(publisher)
            for index in range(40):
                nursery.start_soon(subscriber, index)
    assert len(results) == 40
    for start, seen in results.values():
        assert seen == published[start + 1 :]


@pytest.mark.parametrize(
    ("last_id", "reason"),
    [("nonsense", "malformed"), ("ffffff-1", "unknown"), ("EPOCH-999", "unknown")],
)
async def test_unusable_ids_reset_then_replay_what_is_held(last_id: str, reason: str) -> None:
    hub = Hub()
    published = [await hub.publish("news", str(i)) for i in range(3)]
    if hub.epoch == "ffffff":
        hub.epoch = "eeeeee"  # (the token is random; make "another hub's id" true)
    last_id = last_id.replace("EPOCH", hub.epoch)
    async with hub.subscribe("news", last_event_id=last_id) as subscription:
        items = await take(subscription, 4)
    reset = items[0]
    assert isinstance(reset, Reset) and (reset.channel, reset.reason) == ("news", reason)
    assert ids(items[1:]) == published


async def test_expired_id_resets_and_replays_the_rest() -> None:
    hub = Hub(HistoryLimits(max_messages=5))
    published = [await hub.publish("news", str(i)) for i in range(20)]
    async with hub.subscribe("news", last_event_id=published[2]) as subscription:
        items = await take(subscription, 6)
    assert isinstance(items[0], Reset) and items[0].reason == "expired"
    assert items[0].cursor == published[14]  # just before the oldest still held
    assert ids(items[1:]) == published[15:]


async def test_slow_iterator_catches_up_from_history_without_loss() -> None:
    """A consumer slower than the publisher overflows its live queue; it then reads from
    history and still gets every message once, in order."""
    hub = Hub(HistoryLimits(max_messages=1000, max_bytes=10**7))
    async with hub.subscribe("feed", max_queued_bytes=1000) as subscription:
        published = [await hub.publish("feed", "x" * 100) for _ in range(300)]
        items = await take(subscription, 300)
    assert ids(items) == published


async def test_slow_iterator_beyond_history_gets_a_reset() -> None:
    """Past the live queue and past history too: what was queued, then an explicit reset,
    then everything history still holds."""
    hub = Hub(HistoryLimits(max_messages=50))
    async with hub.subscribe("feed", max_queued_bytes=1000) as subscription:
        published = [await hub.publish("feed", "x" * 100) for _ in range(300)]
        items: list[Message | Reset] = []
        with trio.fail_after(5):
            async for item in subscription:
                items.append(item)
                if isinstance(item, Message) and item.id == published[-1]:
                    break
    resets = [index for index, item in enumerate(items) if isinstance(item, Reset)]
    assert len(resets) == 1
    before, after = ids(items[: resets[0]]), ids(items[resets[0] + 1 :])
    assert 0 < len(before) < 10 and before == published[: len(before)]  # the queued ones
    assert after == published[-50:]  # then what history still holds
    reset = items[resets[0]]
    assert isinstance(reset, Reset) and reset.reason == "expired"


async def test_a_full_sink_falls_back_to_history_in_order() -> None:
    """A sink that refuses (its outbox is full) gets nothing more live; the consumer reads
    the refused message and the rest from history, then the sink takes over again."""
    hub = Hub()
    taken: list[str] = []
    room = trio.Event()
    accept = True

    def sink(message: Message) -> bool:
        if not accept:
            return False
        taken.append(message.id)
        return True

    async with hub.subscribe("s", sink=sink) as subscription, trio.open_nursery() as nursery:

        async def consume() -> None:
            async for item in subscription:
                assert isinstance(item, Message)
                taken.append(item.id)
                if len(taken) == 6:
                    room.set()

        nursery.start_soon(consume)
        await trio.testing.wait_all_tasks_blocked()
        published = [await hub.publish("s", "a"), await hub.publish("s", "b")]
        accept = False
        published += [await hub.publish("s", c) for c in "cde"]
        accept = True  # the consumer replays c d e, re-attaches ...
        published.append(await hub.publish("s", "f"))
        with trio.fail_after(5):
            await room.wait()
        await trio.testing.wait_all_tasks_blocked()
        published.append(await hub.publish("s", "g"))  # ... and g goes to the sink
        nursery.cancel_scope.cancel()
    assert taken == published


async def test_multi_channel_cursor_resumes_every_channel() -> None:
    hub = Hub()
    async with hub.subscribe(["a", "b"]) as subscription:
        await hub.publish("a", "a1")
        await hub.publish("b", "b1")
        await take(subscription, 2)
        cursor = subscription.cursor()
    assert cursor.startswith("a=") and ",b=" in cursor
    missed = [await hub.publish("b", "b2"), await hub.publish("a", "a2")]
    async with hub.subscribe(["a", "b"], last_event_id=cursor) as subscription:
        items = await take(subscription, 2)
    assert sorted(ids(items)) == sorted(missed)
    assert {m.channel for m in items if isinstance(m, Message)} == {"a", "b"}


async def test_invalid_channel_names_are_refused() -> None:
    hub = Hub()
    for name in ["", "a,b", "a=b", "spa ce", "x" * 201]:
        with pytest.raises(ValueError):
            await hub.publish(name, "x")
        with pytest.raises(ValueError):
            hub.subscribe(name)


async def test_channels_beyond_the_limit_forget_the_least_recently_used_idle_one() -> None:
    hub = Hub(max_channels=3)
    async with hub.subscribe("kept"):
        for name in ["one", "two", "three", "four"]:
            await hub.publish(name, "x")
        assert set(hub.channels) == {"kept", "three", "four"}


async def test_messages_are_encoded_once_for_all_subscribers() -> None:
    """Every live subscriber is handed the same bytes object: one encoding per publish."""
    hub = Hub()
    got: list[bytes] = []

    def sink(message: Message) -> bool:
        got.append(message.sse)
        return True

    async def follow(subscription: Subscription) -> None:
        async for _ in subscription:  # nothing comes out: the sink takes every message
            raise AssertionError("unexpected item")

    async with (
        hub.subscribe("x", sink=sink) as first,
        hub.subscribe("x", sink=sink) as second,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(follow, first)
        nursery.start_soon(follow, second)
        await trio.testing.wait_all_tasks_blocked()  # both caught up: attached, live
        await hub.publish("x", "shared")
        nursery.cancel_scope.cancel()
    assert len(got) == 2 and got[0] is got[1]


async def test_a_forgotten_channel_never_reuses_ids() -> None:
    """A channel forgotten (max_channels) and published to again starts past every id it gave:
    an old id is 'expired', not mistaken for one of the new messages."""
    hub = Hub(max_channels=1)
    old = [await hub.publish("a", f"old{i}") for i in range(3)]
    await hub.publish("b", "pushes a out")
    new = [await hub.publish("a", f"new{i}") for i in range(3)]
    assert not set(old) & set(new)
    async with hub.subscribe("a", last_event_id=old[0]) as subscription:
        items = await take(subscription, 4)
    assert isinstance(items[0], Reset) and items[0].reason == "expired"
    assert ids(items[1:]) == new


async def test_a_reset_on_one_channel_carries_the_other_channels_position() -> None:
    hub = Hub()
    b_ids = [await hub.publish("b", f"b{i}") for i in range(5)]
    cursor = f"a=garbage,b={b_ids[1]}"
    async with hub.subscribe(["a", "b"], last_event_id=cursor) as subscription:
        first = (await take(subscription, 1))[0]
    assert isinstance(first, Reset) and first.channel == "a"
    assert f"b={b_ids[1]}" in first.cursor  # not b's head: b2..b4 are still to come


async def test_a_queue_overflow_keeps_the_cursor_at_what_was_handed_out() -> None:
    """cursor() after each item resumes exactly after it, even when the live queue overflowed
    meanwhile (the refused messages are read from history later)."""
    hub = Hub()
    async with hub.subscribe("q", max_queued_bytes=400) as subscription:
        published = [await hub.publish("q", "x" * 100) for _ in range(10)]
        first = await take(subscription, 1)
        cursor = subscription.cursor()
    assert ids(first) == published[:1] and cursor == published[0]


async def test_catching_up_reads_every_channel_in_turn() -> None:
    """A channel with a long backlog does not keep another's backlog from being read."""
    hub = Hub(HistoryLimits(max_messages=10_000))
    async with hub.subscribe(["busy", "quiet"], max_queued_bytes=1) as subscription:
        for i in range(600):
            await hub.publish("busy", str(i))
        await hub.publish("quiet", "q")
        items = await take(subscription, 400)
    assert "quiet" in {item.channel for item in items if isinstance(item, Message)}
