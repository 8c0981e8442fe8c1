"""The server layer's two state machines, seen from outside: the receiver's (who reads the
socket) over real loopback sockets, and the exchange's (where a request is) through a
connection serving a real wsproto client."""

from __future__ import annotations

import select
from collections.abc import Callable

import pytest
import trio
import trio.testing
import wsproto.events as ws_events

from rawstream import App, HTTPError, Request, Response, SSEStream, WebSocket
from rawstream.server.connection import Phase
from rawstream.server.exchange import TRANSITIONS as EXCHANGE_TRANSITIONS
from rawstream.server.exchange import ExchangeState
from rawstream.server.h1 import H1Connection
from rawstream.server.readiness import ReadinessWatcher
from rawstream.server.receiver import TRANSITIONS as RECEIVER_TRANSITIONS
from rawstream.server.receiver import Receiver, ReceiverState

from .helpers import connect, read_until, websocket_client
from .test_fastio import tcp_pair


async def settle(condition: Callable[[], bool], what: str) -> None:
    """Let the tasks run until ``condition()`` holds (failing after 5 s)."""
    with trio.move_on_after(5):
        while not condition():  # noqa: ASYNC110 (polls a state machine; no event to wait on)
            await trio.sleep(0.001)
    assert condition(), f"not within 5 s: {what}"


@pytest.mark.parametrize("table", [RECEIVER_TRANSITIONS, EXCHANGE_TRANSITIONS])
def test_every_state_has_its_moves_and_the_last_state_none(table: dict) -> None:  # type: ignore[type-arg]
    """Each state machine lists every state once, moves only between its own states, and
    ends in a terminal state that every other state can reach."""
    states = set(table)
    assert states == set(type(next(iter(states))))
    assert all(targets <= states for targets in table.values())
    terminal = [state for state, targets in table.items() if not targets]
    assert len(terminal) == 1
    reach = {state: set(targets) for state, targets in table.items()}
    for _ in states:  # a transitive closure, small enough to do naively
        for state in reach:
            reach[state] |= set().union(*(reach[t] for t in reach[state]))
    assert all(terminal[0] in reach[state] for state in states if state is not terminal[0])


@pytest.mark.skipif(not hasattr(select, "epoll"), reason="parking needs epoll (Linux)")
async def test_receiver_parks_wakes_and_is_handed_off(nursery: trio.Nursery) -> None:
    """READING -> (watch, park) RESTARTING -> PARKED; bytes wake it (READING) and it parks
    again; hand_off gives the socket to receive(); the client's close ends it (CLOSED)."""
    watcher = ReadinessWatcher()
    await nursery.start(watcher.run)
    server, client = await tcp_pair()
    receiver = Receiver(server, limit=1024, watcher=watcher)
    gone: list[str] = []
    async with trio.open_nursery() as connection:
        receiver.start(connection)
        assert receiver.state is ReceiverState.READING
        receiver.watch(lambda: gone.append("gone"), park=True)
        assert receiver.state is ReceiverState.RESTARTING
        await settle(lambda: receiver.state is ReceiverState.PARKED, "it parks")
        await client.send_all(b"ping")
        await settle(lambda: receiver.buffered == 4, "the watcher wakes a reading task")
        assert await receiver.receive() == b"ping"  # read ahead by the woken task
        await settle(lambda: receiver.state is ReceiverState.PARKED, "it parks again")
        receiver.hand_off()
        assert receiver.state is ReceiverState.HANDED_OFF
        await client.send_all(b"direct")
        assert await receiver.receive() == b"direct"  # read in this task
        await client.aclose()
        assert await receiver.receive() == b""
        assert receiver.state is ReceiverState.CLOSED
        assert gone == []  # (a handed-off receiver reports EOF to its reader, not by callback)
        receiver.stop()
        connection.cancel_scope.cancel()
    await server.aclose()


@pytest.mark.skipif(not hasattr(select, "epoll"), reason="parking needs epoll (Linux)")
async def test_a_parked_socket_is_read_by_the_watcher(nursery: trio.Nursery) -> None:
    """park_idle (HTTP/1.1): PARKED from the start, with no task and not in the watcher;
    the first receive() reads in its caller's task (CALLER_READS); a watch (a handler runs)
    makes the watcher hold the socket, which it then reads whenever bytes arrive (waking a
    receive() waiting), staying parked; a full buffer starts a task that waits for room
    and parks again; EOF closes it and tells the watch callback."""
    watcher = ReadinessWatcher()
    await nursery.start(watcher.run)
    server, client = await tcp_pair()
    receiver = Receiver(server, limit=64, watcher=watcher, park_idle=True)
    gone: list[str] = []
    async with trio.open_nursery() as connection:
        receiver.start(connection)
        assert receiver.state is ReceiverState.PARKED and watcher.watched == 0
        result: list[bytes] = []

        async def read() -> None:
            result.append(await receiver.receive())

        connection.start_soon(read)
        await settle(lambda: receiver.state is ReceiverState.CALLER_READS, "the caller reads")
        await client.send_all(b"GET / HTTP/1.1\r\n")
        await settle(lambda: result == [b"GET / HTTP/1.1\r\n"], "read in the caller's task")
        assert receiver.state is ReceiverState.PARKED and watcher.watched == 0
        receiver.watch(lambda: gone.append("gone"), full=False)  # (a handler runs)
        assert receiver.state is ReceiverState.PARKED and watcher.watched == 1
        receiver.watch(None)  # (it ended: the socket stays in the watcher)
        connection.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        await client.send_all(b"Host: x\r\n\r\n")
        await settle(lambda: len(result) == 2, "read by the watcher")
        assert result[1] == b"Host: x\r\n\r\n"
        assert receiver.state is ReceiverState.PARKED and watcher.watched == 1
        assert not [t for t in connection.child_tasks if t.name == "receiver"]
        with trio.move_on_after(0.01):
            await receiver.receive()  # nothing comes: cancelled
        assert receiver.state is ReceiverState.PARKED
        await client.send_all(b"x" * 100)  # past the limit: a task waits for room
        await settle(lambda: receiver.state is ReceiverState.READING, "a task waits for room")
        assert watcher.watched == 0 and receiver.buffered >= 64
        taken = b""
        while len(taken) < 100:
            taken += await receiver.receive()
        assert taken == b"x" * 100
        await settle(lambda: receiver.state is ReceiverState.PARKED, "it parks again")
        receiver.watch(lambda: gone.append("gone"), full=False)
        await client.aclose()
        await settle(lambda: receiver.closed, "EOF seen while parked")
        assert gone == ["gone"] and watcher.watched == 0
        assert await receiver.receive() == b""
        receiver.stop()
        connection.cancel_scope.cancel()
    await server.aclose()


async def test_receiver_reports_the_client_leaving_once(nursery: trio.Nursery) -> None:
    """A reading receiver's EOF moves it to CLOSED and calls the watch callback once; stop()
    after that changes nothing."""
    server, client = await tcp_pair()
    receiver = Receiver(server, limit=1024)
    gone: list[str] = []
    async with trio.open_nursery() as connection:
        receiver.start(connection)
        receiver.watch(lambda: gone.append("gone"))
        await client.aclose()
        await settle(lambda: receiver.closed, "EOF is seen")
        assert (receiver.state, gone) == (ReceiverState.CLOSED, ["gone"])
        receiver.stop()
        assert receiver.state is ReceiverState.CLOSED
    await server.aclose()


def exchange_states_app(seen: dict[str, ExchangeState], serving: list[H1Connection]) -> App:
    """Routes that record the state of the exchange serving them (on the connection in
    ``serving``) as their handler runs."""
    app = App()

    def record(name: str) -> None:
        exchange = serving[0].exchange
        assert exchange is not None
        seen[name] = exchange.state

    @app.get("/plain")
    async def plain(request: Request) -> Response:
        record("plain")
        return Response.text("ok")

    @app.sse("/events")
    async def events(request: Request, stream: SSEStream) -> None:
        record("sse")
        await stream.send("one")

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        record("before accept")
        await socket.accept()
        record("accepted")
        await socket.send("hi")
        await socket.close()

    return app


async def test_an_exchange_moves_through_its_states(nursery: trio.Nursery) -> None:
    """A plain request is HANDLING while its handler runs, an SSE stream STREAMING, a
    WebSocket STREAMING until accepted and WEBSOCKET after; between requests the
    connection has no exchange."""
    seen: dict[str, ExchangeState] = {}
    serving: list[H1Connection] = []
    client, conn = connect(nursery, exchange_states_app(seen, serving))
    serving.append(conn)
    await client.send_all(b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
    await read_until(client, b"ok")
    await client.send_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    await read_until(client, b"0\r\n\r\n")
    await settle(lambda: conn.exchange is None, "the connection waits for a request")
    ws, events = await websocket_client(client, "/ws")
    messages = [e.data for e in events if isinstance(e, ws_events.TextMessage)]
    with trio.fail_after(5):
        while not messages:
            ws.receive_data(await client.receive_some(65536))  # type: ignore[attr-defined]
            more = ws.events()  # type: ignore[attr-defined]
            messages += [e.data for e in more if isinstance(e, ws_events.TextMessage)]
    assert messages == ["hi"]
    assert seen == {
        "plain": ExchangeState.HANDLING,
        "sse": ExchangeState.STREAMING,
        "before accept": ExchangeState.STREAMING,
        "accepted": ExchangeState.WEBSOCKET,
    }


async def test_a_closing_connection_keeps_its_exchange_phase(nursery: trio.Nursery) -> None:
    """After an answer that closes the connection, the connection reports the phase of that
    exchange (not idle) until it has flushed and finished its lingering close."""
    app = App()

    @app.get("/bad")
    async def bad(request: Request) -> Response:
        raise HTTPError(400, "no")

    client, conn = connect(nursery, app)
    await client.send_all(b"GET /bad HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"400" in await read_until(client, b"no\n")
    assert conn.statistics().phase is Phase.HTTP  # lingering: reading what the client sends
    await client.aclose()
    await settle(lambda: conn.exchange is None, "the connection ends")
