"""Load against the limits, on loopback and bounded: slowloris tricklers are cut off at
header_timeout while normal clients are served; floods past max_connections (503) and past
max_connections_per_client (429) are refused without starving admitted clients or leaking a
descriptor or a task.

The server runs in the test's own trio run, so :mod:`support.leaks` can count what its
connections leave behind.  The slowloris test runs on a virtual clock (MockClock autojump):
loopback bytes are ready before the clock may jump, so a real socket's timing holds.
"""

from __future__ import annotations

from collections import Counter

import httpx
import trio
import trio.testing
from support.flood import HEALTHZ, hold, holding_app, status_or_closed
from support.leaks import Baseline, wait_until_closed
from support.rawhttp import status_of
from support.testapp import Probes, build_app

from rawstream import Server

# -- slowloris ---------------------------------------------------------------------------------

SLOW_CLIENTS = 200
HEADER_TIMEOUT = 10.0
#: A head that would take 250 s at a byte a second: it never finishes in time.
SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 200


async def trickle(
    port: int,
    answers: list[tuple[float, bytes]],
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Send :data:`SLOW_HEAD` a byte a second until the server answers or closes; record how
    long after connecting that was and what it said."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    start = trio.current_time()
    task_status.started()

    async def send_slowly() -> None:
        for byte in SLOW_HEAD:
            await stream.send_all(bytes([byte]))
            await trio.sleep(1)

    answer = bytearray()
    answered_after: float | None = None
    async with stream, trio.open_nursery() as nursery:
        nursery.start_soon(send_slowly)
        try:
            while chunk := await stream.receive_some(65536):
                answered_after = answered_after or trio.current_time() - start
                answer += chunk
        except trio.BrokenResourceError:  # reset: dropped without an answer
            pass
        nursery.cancel_scope.cancel()
    answers.append((answered_after or trio.current_time() - start, bytes(answer)))


async def test_slowloris_is_cut_off_while_others_are_served(
    start_server, autojump_clock: trio.testing.MockClock
) -> None:
    """200 connections trickling a head a byte a second each get 408 at header_timeout after
    their accept; meanwhile 20 httpx clients, each on a new connection, are served with all
    200 tricklers still connected; afterwards no descriptor or task is left."""
    server: Server = await start_server(build_app(Probes()), header_timeout=HEADER_TIMEOUT)
    baseline = await Baseline.take()
    answers: list[tuple[float, bytes]] = []
    served: list[tuple[int, int]] = []  # (status, connections open at the time)
    async with trio.open_nursery() as nursery:
        for _ in range(SLOW_CLIENTS):
            await nursery.start(trickle, server.port, answers)
        for _ in range(20):  # (virtual time: 0.4 s apart, all before the tricklers' timeout)
            async with httpx.AsyncClient(timeout=30) as client:
                response = await client.get(f"http://127.0.0.1:{server.port}/healthz")
                served.append((response.status_code, len(server.connections)))
            await trio.sleep(0.4)
        assert not answers, "a trickler was dropped before header_timeout"
    assert all(status == 200 and open_ > SLOW_CLIENTS for status, open_ in served), served
    assert len(answers) == SLOW_CLIENTS
    for after, answer in answers:
        assert status_of(answer) == 408
        assert HEADER_TIMEOUT <= after < HEADER_TIMEOUT + 1
    await wait_until_closed(server)
    assert baseline.leaked() == (0, 0)


# -- floods past the connection limits ---------------------------------------------------------


async def flood(server: Server, count: int) -> Counter[int | None]:
    """``count`` connections to ``server`` from 127.0.0.1 that the server must refuse: all are
    opened first (a refused one then waits for its request head, holding a refusal slot),
    then all ask ``/healthz`` and read until the server closes.  Returns how many got each
    status (None: closed without an answer)."""
    results: Counter[int | None] = Counter()
    refused = sum(server.connections_rejected.values()) + count
    go = trio.Event()

    async def one() -> None:
        results[await status_or_closed(server.port, HEALTHZ, go=go)] += 1

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(one)
        with trio.fail_after(10):  # every one accepted, and refused or closed at once
            while sum(server.connections_rejected.values()) < refused:  # noqa: ASYNC110
                await trio.sleep(0.01)
        go.set()
    return results


async def keep_asking(
    client: httpx.AsyncClient,
    url: str,
    server: Server,
    seen: list[tuple[int, int]],
    done: trio.Event,
) -> None:
    """Ask ``url`` over ``client`` (at least once) until ``done``; record each answer's status
    with the number of connections the server had admitted at that moment."""
    while not done.is_set() or not seen:
        response = await client.get(url)
        seen.append((response.status_code, server._admitted))


MAX_CONNECTIONS = 50
FLOOD = 250


async def test_flood_past_max_connections_gets_503_and_leaks_nothing(start_server) -> None:
    """With max_connections=50 held (49 streams and one kept-alive httpx client), 250 more
    connections open at once: the first 50 refused wait for their request and get 503, and
    with refusals at their bound (max_connections) the other 200 are closed unanswered, as
    the server's counters say.  The kept-alive client is served all along and the server
    never admits more than 50; once all have gone no descriptor or task is left, and a new
    client is served."""
    release = trio.Event()
    server: Server = await start_server(
        holding_app(release), max_connections=MAX_CONNECTIONS, keepalive_timeout=60
    )
    baseline = await Baseline.take()
    url = f"http://127.0.0.1:{server.port}/healthz"
    async with httpx.AsyncClient(timeout=30) as kept_alive:
        assert (await kept_alive.get(url)).status_code == 200  # its one slot, kept
        async with trio.open_nursery() as holders:
            for _ in range(MAX_CONNECTIONS - 1):
                await holders.start(hold, server.port, release)
            assert server._admitted == MAX_CONNECTIONS
            done = trio.Event()
            answers: list[tuple[int, int]] = []
            async with trio.open_nursery() as nursery:
                nursery.start_soon(keep_asking, kept_alive, url, server, answers, done)
                results = await flood(server, FLOOD)
                done.set()
            release.set()
    assert results == Counter({503: MAX_CONNECTIONS, None: FLOOD - MAX_CONNECTIONS})
    assert server.connections_rejected == Counter(
        overloaded=MAX_CONNECTIONS, closed_at_once=FLOOD - MAX_CONNECTIONS
    )
    assert server.connections_accepted == MAX_CONNECTIONS + FLOOD
    assert answers and all(status == 200 for status, _ in answers), answers
    assert max(admitted for _, admitted in answers) == MAX_CONNECTIONS  # never beyond
    await wait_until_closed(server)
    assert baseline.leaked() == (0, 0)
    assert await status_or_closed(server.port) == 200


PER_CLIENT = 20
PER_CLIENT_FLOOD = 200
BOUND = 100  # max_connections: also the most refusals at once


async def test_flood_past_the_per_client_cap_gets_429_and_spares_other_clients(
    start_server,
) -> None:
    """127.0.0.1 holds its 20 connections (max_connections_per_client=20) and opens 200
    more at once: 20 refused wait for their request and get 429, and with that client's
    refusals at their bound (the cap again, well under max_connections=100, so it cannot
    take the refusal slots other clients' 503s need) the other 180 are closed unanswered, as
    the counters say.  Meanwhile 127.0.0.2 connects anew and is served each time;
    afterwards the per-address table is empty, no descriptor or task is left, and 127.0.0.1
    is served again."""
    release = trio.Event()
    server: Server = await start_server(
        holding_app(release), max_connections=BOUND, max_connections_per_client=PER_CLIENT
    )
    baseline = await Baseline.take()
    other: list[int | None] = []
    async with trio.open_nursery() as holders:
        for _ in range(PER_CLIENT):
            await holders.start(hold, server.port, release)
        assert server._per_client == {"127.0.0.1": PER_CLIENT}
        async with trio.open_nursery() as nursery:
            flooding = trio.Event()

            async def other_client() -> None:
                while not flooding.is_set() or not other:
                    other.append(await status_or_closed(server.port, local_address="127.0.0.2"))

            nursery.start_soon(other_client)
            results = await flood(server, PER_CLIENT_FLOOD)
            flooding.set()
        release.set()
    assert results == Counter({429: PER_CLIENT, None: PER_CLIENT_FLOOD - PER_CLIENT})
    assert server.connections_rejected == Counter(
        per_client=PER_CLIENT, closed_at_once=PER_CLIENT_FLOOD - PER_CLIENT
    )
    assert other and all(status == 200 for status in other), other
    await wait_until_closed(server)
    assert server._per_client == server._refusing_per_client == {}
    assert baseline.leaked() == (0, 0)
    assert await status_or_closed(server.port) == 200
