"""RedisHub against a real redis-server: the memory hub's semantics, shared across instances
(as workers would share it), and what happens when Redis goes away and comes back."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest
import trio
from conftest import require
from support.rawhttp import free_port
from support.redis import RedisServer

from rawstream.hub import BrokerUnavailable, HistoryLimits, Message, Reset

from .conftest import ids, take

if TYPE_CHECKING:
    from rawstream.hub.redis import RedisHub

#: Test-friendly hub options: outages noticed within half a second, new channels read within
#: 50 ms.
FAST = {"timeout": 0.5, "block_ms": 50}

StartHub = Callable[..., Awaitable["RedisHub"]]


@pytest.fixture
async def start_hub(nursery: trio.Nursery, redis_url: str) -> AsyncIterator[StartHub]:
    """``hub = await start_hub(history=..., **options)``: a RedisHub on this test's Redis,
    running in the test's nursery (cancelled when the test ends)."""
    from rawstream.hub.redis import RedisHub

    async def start(history: HistoryLimits | None = None, **options: Any) -> RedisHub:
        hub = RedisHub(redis_url, history, **{**FAST, **options})
        await nursery.start(hub.run)
        return hub

    yield start


async def wait_for_health(hub: RedisHub, status: str) -> None:
    """Poll until the hub reports ``status`` (it has no event to wait on)."""
    while hub.health().status != status:  # noqa: ASYNC110 (polling a state from outside)
        await trio.sleep(0.02)


async def wait_until(done: Callable[[], bool], what: str) -> None:
    """Poll another process's state (Redis's, through ``RedisServer.command``) until
    ``done()``; fail saying ``what`` did not happen within 5 seconds."""
    deadline = trio.current_time() + 5
    while not done():
        if trio.current_time() > deadline:
            raise AssertionError(f"not within 5 s: {what}")
        await trio.sleep(0.02)


def readers_since(redis: RedisServer, client_id: int) -> set[str]:
    """The hub instances (12-character prefixes) whose reader is on a connection Redis
    accepted after the one with id ``client_id`` (the hub names its clients
    ``rawstream-reader-INSTANCE``)."""
    listing = redis.command("CLIENT", "LIST") or ""
    readers: set[str] = set()
    for line in listing.splitlines():
        fields = dict(field.split("=", 1) for field in line.split() if "=" in field)
        name = fields.get("name", "")
        if name.startswith("rawstream-reader-") and int(fields["id"]) > client_id:
            readers.add(name.removeprefix("rawstream-reader-"))
    return readers


# -- the memory hub's semantics --------------------------------------------------------------------


async def test_publish_then_subscribers_receive_in_order(start_hub: StartHub) -> None:
    """Text and bytes payloads and event types come back as published, ids in order."""
    with trio.fail_after(10):
        hub = await start_hub()
        assert hub.health().ok and not hub.per_process
        async with hub.subscribe("news") as sub:
            published = [
                await hub.publish("news", "hello", event="greeting"),
                await hub.publish("news", b"\x00\xffbin"),
                await hub.publish("news", "caf\u00e9 \ud83d"),  # a lone surrogate survives
            ]
            items = await take(sub, 3)
        assert [(m.id, m.data, m.event) for m in items if isinstance(m, Message)] == [
            (published[0], "hello", "greeting"),
            (published[1], b"\x00\xffbin", None),
            (published[2], "caf\u00e9 \ud83d", None),
        ]
        positions = [tuple(map(int, i.split("-"))) for i in published]
        assert positions == sorted(positions) and len(set(positions)) == 3
        assert "news" not in hub.channels  # the last subscription left: no longer read


async def test_replay_from_last_event_id(start_hub: StartHub) -> None:
    """A subscription with a last id replays what followed it, then goes live."""
    with trio.fail_after(10):
        hub = await start_hub()
        published = [await hub.publish("feed", f"m{i}") for i in range(5)]
        async with hub.subscribe("feed", published[1]) as sub:
            replayed = await take(sub, 3)
            published.append(await hub.publish("feed", "live"))
            live = await take(sub, 1)
            assert sub.cursor() == published[-1]
        assert ids(replayed + live) == published[2:]


async def test_replay_reaches_back_past_the_window_into_redis(start_hub: StartHub) -> None:
    """The local window keeps 5 messages; Redis (trimming approximately) keeps more, so a
    resume from further back reads Redis first, then the window, without a seam."""
    with trio.fail_after(10):
        hub = await start_hub(HistoryLimits(max_messages=5))
        async with hub.subscribe("deep") as watcher:  # keeps the channel (and window) open
            published = [await hub.publish("deep", f"m{i}") for i in range(40)]
            await take(watcher, 40)
            assert len(hub.channels["deep"].window) == 5
            async with hub.subscribe("deep", published[3]) as sub:
                replayed = await take(sub, 36)
        assert ids(replayed) == published[4:]


async def test_multi_channel_cursor_resumes_every_channel(start_hub: StartHub) -> None:
    with trio.fail_after(10):
        hub = await start_hub()
        a0 = await hub.publish("a", "a0")
        b0 = await hub.publish("b", "b0")
        async with hub.subscribe(["a", "b"], f"a={a0},b={b0}") as sub:
            a1 = await hub.publish("a", "a1")
            b1 = await hub.publish("b", "b1")
            items = await take(sub, 2)
            assert sub.cursor() == f"a={a1},b={b1}"
        assert sorted(ids(items)) == sorted([a1, b1])


async def test_two_instances_share_channels(start_hub: StartHub) -> None:
    """Two hubs on one Redis (two workers): whoever publishes, subscribers on both receive
    every message, in the same order."""
    with trio.fail_after(10):
        hub_a = await start_hub()
        hub_b = await start_hub()
        async with hub_a.subscribe("shared") as on_a, hub_b.subscribe("shared") as on_b:
            published = []
            for i in range(60):
                publisher = hub_a if i % 3 else hub_b
                published.append(await publisher.publish("shared", f"m{i}"))
            got_a = await take(on_a, 60)
            got_b = await take(on_b, 60)
        assert ids(got_a) == ids(got_b) == published
        assert [m.data for m in got_a if isinstance(m, Message)] == [f"m{i}" for i in range(60)]


async def test_subscribing_at_random_moments_gives_contiguous_sequences(
    start_hub: StartHub,
) -> None:
    """While messages are published continuously, subscribers join on either instance at
    random moments, some from a recent id (possibly one this instance's reader has not read
    yet), some from none, some too slow for their queue (they fall back to catching up):
    each sees a contiguous, duplicate-free run of the published sequence up to the end."""
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    total = 300
    with trio.fail_after(30):
        hubs = [await start_hub(HistoryLimits(max_messages=10_000)) for _ in range(2)]
        published: list[str] = []
        outcomes: list[tuple[str | None, list[str]]] = []

        async def publisher() -> None:
            for i in range(total):
                published.append(await hubs[0].publish("race", f"m{i}"))
                await trio.sleep(rng.uniform(0, 0.004))
            published.append(await hubs[0].publish("race", "end"))

        async def subscriber(delay: float, hub_index: int, from_id: bool, slow: bool) -> None:
            await trio.sleep(delay)
            last_id = None
            if from_id and published:  # the latest one is likely not read here yet
                last_id = published[-1] if rng.random() < 0.5 else rng.choice(published)
            received: list[str] = []
            async with hubs[hub_index].subscribe(
                "race", last_id, max_queued_bytes=100 if slow else 256 * 1024
            ) as sub:
                async for item in sub:
                    assert isinstance(item, Message), item
                    received.append(item.id)
                    if item.data == "end":
                        break
                    if slow:  # room for one message: falls back to catching up, often
                        await trio.sleep(rng.uniform(0, 0.01))
            outcomes.append((last_id, received))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(publisher)
            for n in range(16):
                nursery.start_soon(subscriber, rng.uniform(0, 0.8), n % 2, n % 4 != 0, n % 3 == 0)
        assert len(outcomes) == 16
        for last_id, received in outcomes:
            assert received, f"seed={seed}: nothing received from {last_id}"
            start = published.index(received[0])
            assert received == published[start:], f"seed={seed}: not contiguous, or duplicates"
            if last_id is not None:
                assert start == published.index(last_id) + 1, f"seed={seed}: not right after"


async def test_an_id_just_published_elsewhere_is_known_at_once(start_hub: StartHub) -> None:
    """A client may reconnect to another worker with an id that worker's reader has not
    read yet: opening the subscription reads up to it first (no false "unknown" reset)."""
    with trio.fail_after(10):
        hub_a = await start_hub()
        hub_b = await start_hub()
        async with hub_b.subscribe("fresh"):  # the channel is open (and read) on hub_b
            for i in range(30):
                just_published = await hub_a.publish("fresh", f"m{i}")
                async with hub_b.subscribe("fresh", just_published) as sub:
                    following = await hub_a.publish("fresh", f"m{i}+")
                    assert ids(await take(sub, 1)) == [following]


async def test_resets_for_malformed_unknown_and_expired_ids(
    start_hub: StartHub, redis_server_process: RedisServer
) -> None:
    """A bad id gets a Reset (with a cursor that resumes right there) and then everything
    still held; so does an id whose successors Redis trimmed, whether trimmed before the
    subscription opened or while it was catching up."""
    with trio.fail_after(10):
        hub = await start_hub()
        published = [await hub.publish("r", f"m{i}") for i in range(20)]
        for bad in [
            "garbage",
            "12",
            "1-2-3",
            "-1-0",
            "1-",
            "\u0661-\u0662",
            "18446744073709551616-0",
        ]:
            async with hub.subscribe("r", bad) as sub:
                reset, *replayed = await take(sub, 21)
            assert isinstance(reset, Reset) and reset.reason == "malformed", bad
            assert ids(replayed) == published
        async with hub.subscribe("r", "99999999999999-0") as sub:
            reset, *replayed = await take(sub, 21)
        assert isinstance(reset, Reset) and reset.reason == "unknown"
        assert ids(replayed) == published

        # Opened before the trim, read after it: the catch-up from Redis sees the trim.
        async with hub.subscribe("r", published[2]) as early:
            redis_server_process.command("XTRIM", "rawstream:channel:r", "MAXLEN", "10")
            reset, *replayed = await take(early, 11)
        assert isinstance(reset, Reset) and reset.reason == "expired"
        assert ids(replayed) == published[10:]
        ms, seq = map(int, published[10].split("-"))
        assert reset.cursor == (f"{ms}-{seq - 1}" if seq else f"{ms - 1}-{2**64 - 1}")

        # Opened after the trim: the id is known to be expired at once.
        async with hub.subscribe("r", published[5]) as late:
            reset, *replayed = await take(late, 11)
        assert isinstance(reset, Reset) and reset.reason == "expired"
        assert ids(replayed) == published[10:]
        async with hub.subscribe("r", reset.cursor) as again:  # a reset's cursor resumes
            replayed = await take(again, 10)
        assert ids(replayed) == published[10:]


async def test_a_reader_that_fell_behind_a_trim_makes_the_loss_explicit(
    start_hub: StartHub, redis_server_process: RedisServer
) -> None:
    """Redis trims entries this process's reader has not read yet (here: the event loop is
    blocked while another writer adds 20 entries, keeping 5).  The subscriptions fail rather
    than skip them, and resuming gives an ``expired`` reset, then what is left."""
    with trio.fail_after(10):
        hub = await start_hub(HistoryLimits(max_messages=5))
        async with hub.subscribe("g") as sub:
            first = await hub.publish("g", "first")
            assert ids(await take(sub, 1)) == [first]
            added = [  # synchronous: the hub's reader cannot run meanwhile
                redis_server_process.command(
                    "XADD", "rawstream:channel:g", "MAXLEN", "5", "*", "data", f"w{i}"
                )
                for i in range(20)
            ]
            with pytest.raises(BrokerUnavailable, match="fell behind"):
                await take(sub, 20)
            cursor = sub.cursor()
        async with hub.subscribe("g", cursor) as resumed:
            reset, *rest = await take(resumed, 6)
        assert isinstance(reset, Reset) and reset.reason == "expired"
        assert ids(rest) == added[-5:]


async def test_publish_trims_redis_by_count_and_by_age(
    start_hub: StartHub, redis_server_process: RedisServer
) -> None:
    """XADD trims by count (approximately: whole nodes of 100 entries); with max_age, an
    XTRIM MINID follows each publish."""
    with trio.fail_after(10):
        hub = await start_hub(HistoryLimits(max_messages=5))
        for i in range(250):
            await hub.publish("count", f"m{i}")
        length = int(redis_server_process.command("XLEN", "rawstream:channel:count"))
        assert 5 <= length < 250

        aged = await start_hub(HistoryLimits(max_age=0.2))
        last = [await aged.publish("age", f"m{i}") for i in range(150)][-1]
        # Real time, not a MockClock: the hub trims by time.time() against Redis's ids (ms
        # since the epoch).  Wait until even the last entry is older than max_age.
        older_at = (int(last.split("-")[0]) + 1) / 1000 + 0.2
        await trio.sleep(max(0.0, older_at - time.time()) + 0.01)
        await aged.publish("age", "new")
        assert int(redis_server_process.command("XLEN", "rawstream:channel:age")) < 151


async def test_member_counts_span_instances_and_skip_dead_ones(
    start_hub: StartHub, redis_server_process: RedisServer
) -> None:
    """Counts add up over live instances; a crashed instance's field (no heartbeat) is not
    counted and is removed; one whose heartbeat expires stops counting; a hub that stops
    withdraws its counts."""
    with trio.fail_after(10):
        hub_a = await start_hub()
        assert await hub_a.count_member("room:x", +1) == 1
        async with trio.open_nursery() as nursery:
            from rawstream.hub.redis import RedisHub

            hub_b = RedisHub(hub_a.url, **FAST)
            await nursery.start(hub_b.run)
            assert await hub_b.count_member("room:x", +1) == 2
            assert await hub_b.count_member("room:x", +1) == 3
            assert await hub_a.count_member("room:x", -1) == 2
            assert await hub_a.count_member("room:x", -1) == 2  # never below zero here

            key = "rawstream:members:room:x"
            redis_server_process.command("HSET", key, "crashed", "5")
            redis_server_process.command("HSET", key, "fading", "4")
            redis_server_process.command("SET", "rawstream:instance:fading", "1", "PX", "300")
            assert await hub_a.count_member("room:x", +1) == 1 + 2 + 4
            assert redis_server_process.command("HEXISTS", key, "crashed") == "0"
            fading = "rawstream:instance:fading"
            await wait_until(  # Redis expires the heartbeat (PX 300) on its own clock
                lambda: redis_server_process.command("EXISTS", fading) == "0",
                f"the heartbeat key {fading} expired",
            )
            assert await hub_a.count_member("room:x", 0) == 1 + 2
            nursery.cancel_scope.cancel()  # hub_b stops
        assert await hub_a.count_member("room:x", 0) == 1


# -- faults --------------------------------------------------------------------------------------


async def test_unreachable_redis_at_start_fails_run() -> None:
    require("coredis", "the Redis hub's client")
    from rawstream.hub.redis import RedisHub

    with trio.fail_after(10):
        hub = RedisHub(f"redis://:secret@127.0.0.1:{free_port()}/0", **FAST)
        async with trio.open_nursery() as nursery:
            with pytest.raises(BrokerUnavailable, match="cannot reach Redis") as raised:
                await nursery.start(hub.run)
        assert "secret" not in str(raised.value)
        assert hub.health().status == "degraded"
        with pytest.raises(BrokerUnavailable):
            await hub.publish("x", "y")


async def test_redis_stopped_then_restarted(
    start_hub: StartHub, redis_server_process: RedisServer
) -> None:
    """Redis stops: health degraded, publish and subscribe raise BrokerUnavailable, and an
    open subscription ends with it.  Redis comes back (empty: no persistence): health ok,
    publishing and live delivery work again."""
    with trio.fail_after(20):
        hub = await start_hub()
        async with hub.subscribe("s") as sub:
            await hub.publish("s", "before")
            assert ids(await take(sub, 1))
            redis_server_process.stop()
            with pytest.raises(BrokerUnavailable):
                await take(sub, 1)
        assert hub.health().status == "degraded"
        assert "redis unreachable" in hub.health().detail
        with pytest.raises(BrokerUnavailable):
            await hub.publish("s", "during")
        with pytest.raises(BrokerUnavailable):
            async with hub.subscribe("s"):
                pass

        await redis_server_process.start_async()
        await wait_for_health(hub, "ok")
        async with hub.subscribe("s") as sub:
            published = await hub.publish("s", "after")
            assert ids(await take(sub, 1)) == [published]


@pytest.mark.parametrize("outage", ["pause", "client-kill"])
async def test_resume_after_an_outage_loses_nothing(
    start_hub: StartHub, redis_server_process: RedisServer, outage: str
) -> None:
    """Redis hangs (SIGSTOP, then SIGCONT) or drops every connection (CLIENT KILL), and
    keeps its data either way.  Once the hubs have reconnected, a client resuming from its
    last id gets what it had not received from before the outage, then what was published
    after it, on either instance.

    A hang is always noticed (the blocked read times out): health turns degraded, publishes
    fail at once, open subscriptions fail.  A dropped connection is noticed by a reader
    blocked on it; one that was between two reads just gets a new connection and reads on
    from its head: its subscriptions either fail or go on without a gap."""
    with trio.fail_after(20):
        hub = await start_hub()
        other = await start_hub()
        before = [await hub.publish("o", f"before-{i}") for i in range(6)]
        async with (
            hub.subscribe("o", before[0]) as client,
            hub.subscribe("o") as live_here,
            other.subscribe("o") as live_there,
        ):
            assert ids(await take(client, 2)) == before[1:3]
            last_seen = client.cursor()  # the client's Last-Event-ID when it is cut off
            if outage == "pause":
                redis_server_process.pause()
                await wait_for_health(hub, "degraded")
                # at once (Redis is known to be down), not after a timed-out XADD ("could not
                # publish ..."): the hub's health message
                with pytest.raises(BrokerUnavailable, match=r"^redis unreachable"):
                    await hub.publish("o", "during")
                for live in (live_here, live_there):  # each hub ended its streams
                    with pytest.raises(BrokerUnavailable):
                        await take(live, 1)
                redis_server_process.resume()
            else:
                newest_before = int(redis_server_process.command("CLIENT", "ID") or 0)
                assert redis_server_process.kill_clients() >= 4
                # A reader notices at its next read (every block_ms) and reads on on a new
                # connection: wait for both hubs' new readers, so that "ok" below means
                # recovered, not "not noticed yet".
                instances = {hub.instance[:12], other.instance[:12]}
                await wait_until(
                    lambda: readers_since(redis_server_process, newest_before) >= instances,
                    "both hubs read on new connections after CLIENT KILL",
                )
            await wait_for_health(hub, "ok")
            await wait_for_health(other, "ok")
            after = [await hub.publish("o", f"after-{i}") for i in range(3)]
            if outage == "client-kill":
                for live in (live_here, live_there):
                    with contextlib.suppress(BrokerUnavailable):  # or it noticed nothing
                        assert ids(await take(live, 3)) == after
        for resumer in (hub, other):
            async with resumer.subscribe("o", last_seen) as resumed:
                assert ids(await take(resumed, 6)) == before[3:] + after


async def test_hub_can_run_again_after_it_stopped(redis_url: str) -> None:
    """Cancelling run() (the blocked read included) releases everything; the hub runs
    again and works."""
    from rawstream.hub.redis import RedisHub

    with trio.fail_after(10):
        hub = RedisHub(redis_url, **FAST)
        for round_ in range(2):
            async with trio.open_nursery() as nursery:
                await nursery.start(hub.run)
                async with hub.subscribe("again") as sub:
                    published = await hub.publish("again", f"round {round_}")
                    assert ids(await take(sub, 1)) == [published]
                nursery.cancel_scope.cancel()
            assert hub.health().detail == "stopped"
            with pytest.raises(BrokerUnavailable, match="not running"):
                await hub.publish("again", "x")
