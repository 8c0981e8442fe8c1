"""An idle stream holds no reading or writing task: the server's readiness watcher waits on
its socket, and everything a reading task did still happens (a client leaving cancels the
handler, bytes it sends are read and bounded, the connection serves the next request)."""

from __future__ import annotations

import select
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing

import httpx
import pytest
import trio
from conftest import StartServer
from httpx_sse import aconnect_sse

from rawstream import App, Event, Request, Response, Server, SSEStream
from rawstream.server.readiness import ReadinessWatcher
from rawstream.server.receiver import Receiver

pytestmark = pytest.mark.skipif(not hasattr(select, "epoll"), reason="parking needs epoll (Linux)")

HEAD = b"GET /idle HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"


def sockets_held(server: Server) -> int:
    """How many sockets the server's readiness watcher holds."""
    return server.readiness.watched


def tasks_named(name: str) -> list[trio.lowlevel.Task]:
    """Every task of this Trio run called ``name``."""
    found = []
    pending = [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        if task.name == name:
            found.append(task)
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return found


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Let the server run until ``condition()`` holds (failing, with ``what``, after 5 s)."""
    try:
        with trio.fail_after(5):
            while not condition():  # noqa: ASYNC110 (polls server state; no event to wait on)
                await trio.sleep(0.001)
    except trio.TooSlowError:
        raise AssertionError(f"not within 5 s: {what}") from None


class IdleApp:
    """``/idle``: one event, then silence until ``release`` is set (or the client leaves)."""

    def __init__(self) -> None:
        self.app = App()
        self.release = trio.Event()
        self.ended = trio.Event()
        self.app.sse("/idle")(self.idle)

        self.app.get("/next")(self.next_request)

    async def next_request(self, request: Request) -> Response:
        return Response.text("next")

    async def idle(self, request: Request, stream: SSEStream) -> None:
        try:
            await stream.send(Event("hello", id="1"))
            await self.release.wait()
        finally:
            self.ended.set()


def parked(server: Server) -> bool:
    return sockets_held(server) == 1 and not tasks_named("receiver") + tasks_named("writer")


async def test_idle_stream_parks_and_a_leaving_client_cancels_it(
    start_server: StartServer,
) -> None:
    idle = IdleApp()
    server = await start_server(idle.app)
    # (The event iterator stays open: a dropped async generator would be finalized, and its
    # finalizer closes the response, which is the client leaving.)
    async with (
        httpx.AsyncClient() as client,
        aconnect_sse(client, "GET", f"http://127.0.0.1:{server.port}/idle") as source,
        aclosing(source.aiter_sse()) as events,
    ):
        first = await anext(events)
        assert (first.data, first.id) == ("hello", "1")
        await wait_for(lambda: parked(server), "the stream parks")
        assert not idle.ended.is_set()
    # The client has gone: the watcher wakes the receiver, which cancels the handler.
    with trio.fail_after(5):
        await idle.ended.wait()
    await wait_for(lambda: not server.connections, "the connection closes")
    assert sockets_held(server) == 0


async def test_bytes_sent_during_a_parked_stream_are_read_and_bounded(
    start_server: StartServer,
) -> None:
    idle = IdleApp()
    server = await start_server(idle.app, read_buffer_bytes=4096)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(HEAD)
        await wait_for(lambda: parked(server), "the stream parks")
        conn = next(iter(server.connections))
        sock.sendall(b"x" * 100)  # a client may pipeline a request or two: read, kept
        await wait_for(lambda: conn.receiver.buffered == 100, "the bytes are read")
        await wait_for(lambda: parked(server), "the stream parks again")
        assert not idle.ended.is_set()
        sock.sendall(b"x" * 8192)  # past the read buffer: abuse, the stream ends
        with trio.fail_after(5):
            await idle.ended.wait()
        assert conn.receiver.buffered >= 4096


async def test_a_parked_stream_that_ends_leaves_the_connection_serving(
    start_server: StartServer,
) -> None:
    idle = IdleApp()
    server = await start_server(idle.app)
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        await stream.send_all(HEAD)
        await wait_for(lambda: parked(server), "the stream parks")
        idle.release.set()
        received = bytearray()
        with trio.fail_after(5):
            while not received.endswith(b"0\r\n\r\n"):  # the chunked body's end
                received += await stream.receive_some(65536)
        assert b"data: hello" in received
        await stream.send_all(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = bytearray()
        with trio.fail_after(5):
            while not reply.endswith(b"next"):
                reply += await stream.receive_some(65536)
        assert reply.startswith(b"HTTP/1.1 200 ")
        assert len(server.connections) == 1
        # Waiting for the next request, the connection stays parked: no reading task, the
        # watcher holds the socket (and reads the next request when it comes).  (The writer
        # task the stream started may wait on: only a stream ends it when idle.)
        await wait_for(
            lambda: sockets_held(server) == 1 and not tasks_named("receiver"),
            "the connection stays parked",
        )


async def test_a_parked_stream_reads_a_late_request_body_without_spinning(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A streamed response whose generator reads the request body after the head went out:
    the watcher reads the parked socket when the body comes and wakes the generator (no
    reading task is started meanwhile, over and over or at all)."""
    app = App()

    @app.post("/upload")
    async def upload(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield b"started\n"
            data = await request.body()
            yield b"got %d bytes\n" % len(data)

        return Response(body())

    starts: list[Receiver] = []
    start_task = Receiver._start_task

    def counted_start_task(receiver: Receiver) -> None:
        starts.append(receiver)
        start_task(receiver)

    monkeypatch.setattr(Receiver, "_start_task", counted_start_task)
    server = await start_server(app)
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        await stream.send_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
        received = bytearray()
        with trio.fail_after(5):
            while b"started" not in received:
                received += await stream.receive_some(65536)
        await wait_for(lambda: parked(server), "the socket stays parked")
        before = len(starts)
        await trio.sleep(0.1)  # the handler waits for its body meanwhile
        assert len(starts) == before, "the reading task was restarted while nothing arrived"
        await stream.send_all(b"hello")
        with trio.fail_after(5):
            while b"got 5 bytes" not in received:
                received += await stream.receive_some(65536)


async def test_watcher_calls_back_while_readable_and_hands_back_what_it_holds() -> None:
    """A registration lasts until unwatch: each time the socket is readable the callback
    runs (it reads what it was called for); when the watcher stops, every socket it holds
    is called back once more, with the watcher no longer available."""
    watcher = ReadinessWatcher()
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    calls: list[str] = []

    def reader(sock: socket.socket, name: str) -> Callable[[], None]:
        def on_readable() -> None:
            if watcher.available:
                sock.recv(100)
            calls.append(name if watcher.available else f"{name} handed back")

        return on_readable

    with a, b, c, d:
        async with trio.open_nursery() as nursery:
            assert not watcher.available  # (before it runs)
            await nursery.start(watcher.run)
            watcher.watch(a.fileno(), reader(a, "a"))
            watcher.watch(c.fileno(), reader(c, "c"))
            await trio.sleep(0.01)
            assert calls == []  # nothing readable yet
            b.send(b"!")
            await wait_for(lambda: calls == ["a"], "a's callback")
            b.send(b"!")  # still watched: called again
            await wait_for(lambda: calls == ["a", "a"], "a's second callback")
            watcher.unwatch(a.fileno())
            b.send(b"!")  # no longer watched
            await trio.sleep(0.01)
            assert calls == ["a", "a"] and watcher.watched == 1
            nursery.cancel_scope.cancel()
        # The watcher ended: what it held was called back (its owners read for themselves).
        assert calls == ["a", "a", "c handed back"]
        assert not watcher.available and watcher.watched == 0
