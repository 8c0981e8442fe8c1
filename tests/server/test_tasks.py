"""ConnectionTasks keeps what a per-connection nursery guaranteed: its tasks end before the
connection does, an error in one ends the connection and comes out of it (never out of the
server's nursery, and never in place of an exception already on its way out), and shutdown
still reaches them."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import trio
import trio.testing

from rawstream import App, Config, Server, SSEStream
from rawstream.server import h1
from rawstream.server.outbox import Outbox
from rawstream.server.tasks import ConnectionTasks


async def _sleeper(scope: trio.CancelScope, ended: list[str], name: str) -> None:
    with scope:
        try:
            await trio.sleep_forever()
        finally:
            await trio.lowlevel.cancel_shielded_checkpoint()  # (cleanup that takes a step)
            ended.append(name)


async def _broken(scope: trio.CancelScope, message: str) -> None:
    with scope:
        await trio.lowlevel.checkpoint()
        raise ValueError(message)


async def _forever(scope: trio.CancelScope) -> None:
    with scope:
        await trio.sleep_forever()


async def _fails_in_cleanup(scope: trio.CancelScope, message: str) -> None:
    with scope:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            raise ValueError(message) from None


async def test_aclose_cancels_running_tasks_and_waits_for_their_cleanup() -> None:
    ended: list[str] = []
    async with trio.open_nursery() as nursery:
        tasks = ConnectionTasks(nursery)
        tasks.start_soon(lambda s: _sleeper(s, ended, "writer"), trio.CancelScope(), name="w")
        tasks.start_soon(lambda s: _sleeper(s, ended, "receiver"), trio.CancelScope(), name="r")
        await trio.testing.wait_all_tasks_blocked()
        assert tasks.running == 2
        with trio.CancelScope() as caller:
            caller.cancel()  # (the connection itself cancelled: aclose waits regardless)
            await tasks.aclose()
        assert sorted(ended) == ["receiver", "writer"]
        assert tasks.running == 0
        assert not tasks.cancel_scope.cancel_called  # (ending normally cancels only the tasks)
        assert not nursery.child_tasks
        tasks.raise_errors()  # (nothing to raise)


async def test_a_task_that_fails_ends_the_connection_not_the_server() -> None:
    ended: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep, 0.01)  # (the server's nursery has other work: it goes on)
        tasks = ConnectionTasks(nursery)
        with trio.fail_after(5), tasks.cancel_scope:
            survivor = functools.partial(_sleeper, ended=ended, name="survivor")
            tasks.start_soon(survivor, trio.CancelScope(), name="survivor")
            tasks.start_soon(
                lambda s: _broken(s, "a bug in a writer"), trio.CancelScope(), name="b"
            )
            await trio.sleep_forever()  # the connection's body: cancelled by the failure
        assert tasks.cancel_scope.cancelled_caught
        with trio.fail_after(5):  # (the failure cancelled the other task too, before aclose)
            while tasks.running:
                await trio.lowlevel.checkpoint()
        assert ended == ["survivor"]
        await tasks.aclose()
        with pytest.raises(ValueError, match="a bug in a writer"):
            tasks.raise_errors()


async def test_every_task_error_comes_out_beside_the_connections_own() -> None:
    async with trio.open_nursery() as nursery:
        tasks = ConnectionTasks(nursery)
        with tasks.cancel_scope:
            tasks.start_soon(lambda s: _broken(s, "writer bug"), trio.CancelScope(), name="w")
            tasks.start_soon(
                lambda s: _fails_in_cleanup(s, "receiver bug"), trio.CancelScope(), name="r"
            )
            await trio.sleep_forever()
        await tasks.aclose()
        with pytest.raises(ExceptionGroup) as both:
            tasks.raise_errors()
        assert sorted(str(e) for e in both.value.exceptions) == ["receiver bug", "writer bug"]
        # An exception already on its way out (a KeyboardInterrupt, say) is not replaced.
        interrupt = KeyboardInterrupt()
        with pytest.raises(BaseExceptionGroup) as group:
            tasks.raise_errors(interrupt)
        assert group.value.exceptions[0] is interrupt
        assert len(group.value.exceptions) == 3


async def test_an_exception_in_flight_without_task_errors_goes_on_alone() -> None:
    async with trio.open_nursery() as nursery:
        tasks = ConnectionTasks(nursery)
        await tasks.aclose()
        interrupt = KeyboardInterrupt()
        with pytest.raises(KeyboardInterrupt) as caught:
            tasks.raise_errors(interrupt)
        assert caught.value is interrupt


async def test_no_task_starts_once_closed_and_a_refused_start_is_not_waited_for() -> None:
    async with trio.open_nursery() as nursery:
        tasks = ConnectionTasks(nursery)
        await tasks.aclose()
        with pytest.raises(RuntimeError):
            tasks.start_soon(_forever, trio.CancelScope(), name="late")
        assert not nursery.child_tasks
    late = ConnectionTasks(nursery)  # (its nursery has closed: trio refuses the start)
    with pytest.raises(RuntimeError):
        late.start_soon(_forever, trio.CancelScope(), name="refused")
    assert late.running == 0
    with trio.fail_after(1):
        await late.aclose()


async def test_cancelling_the_servers_nursery_reaches_the_tasks() -> None:
    ended: list[str] = []
    async with trio.open_nursery() as nursery:
        tasks = ConnectionTasks(nursery)
        tasks.start_soon(lambda s: _sleeper(s, ended, "writer"), trio.CancelScope(), name="w")
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert ended == ["writer"]
    await tasks.aclose()
    tasks.raise_errors()  # (a cancellation is not an error of the connection's)


def _record_tasks_at_close(monkeypatch: pytest.MonkeyPatch, server: Server) -> list[set[str]]:
    """The connection tasks (writer, receiver) still in the server's nursery each time a
    connection closes its socket."""
    seen: list[set[str]] = []
    close = h1._close

    async def recording_close(stream: trio.abc.Stream) -> None:
        assert server.connections_nursery is not None
        names = {task.name for task in server.connections_nursery.child_tasks}
        seen.append(names & {"writer", "receiver"})
        await close(stream)

    monkeypatch.setattr(h1, "_close", recording_close)
    return seen


def _streaming_app(streaming: trio.Event, fail: bool) -> App:
    app = App()

    @app.sse("/feed")
    async def feed(request: object, stream: SSEStream) -> None:
        for _ in range(64):  # (more than the socket takes from a client that does not read)
            await stream.send("x" * 4096)
        streaming.set()
        if fail:
            raise RuntimeError("the handler fails with its writer blocked")
        await trio.sleep_forever()

    return app


async def test_a_stream_whose_client_left_leaves_no_task_behind() -> None:
    """A real server: an SSE stream's writer runs as a ConnectionTasks task in the server's
    nursery; once the client has gone and the connection closed, none of its tasks is left."""
    streaming = trio.Event()
    server = Server(_streaming_app(streaming, fail=False), Config())
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve, "127.0.0.1", 0)
        client = await trio.open_tcp_stream("127.0.0.1", server.ports[0])
        await client.send_all(b"GET /feed HTTP/1.1\r\nHost: x\r\n\r\n")
        await client.receive_some(65536)
        assert server.connections_nursery is not None
        with trio.fail_after(10):
            while not any(t.name == "writer" for t in server.connections_nursery.child_tasks):  # noqa: ASYNC110
                await trio.sleep(0.001)
        await client.aclose()  # (unread data: a reset, so the writer's send fails)
        with trio.fail_after(10):
            while server.connections:  # noqa: ASYNC110 (no event says a connection closed)
                await trio.sleep(0.001)
        names = {task.name for task in server.connections_nursery.child_tasks}
        assert not names & {"writer", "receiver"}, names
        server.shutdown()
    assert server.connections_nursery is None  # (its nursery has ended)


async def test_a_writer_blocked_at_close_ends_before_the_socket_closes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The handler fails while its writer waits in send_all for a client that does not
    read: the connection ends, and its writer is gone by the time the socket closes."""
    streaming = trio.Event()
    server = Server(_streaming_app(streaming, fail=True), Config(close_timeout=0.2))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve, "127.0.0.1", 0)
        assert server.connections_nursery is not None
        tasks_at_close = _record_tasks_at_close(monkeypatch, server)
        client = await trio.open_tcp_stream("127.0.0.1", server.ports[0])
        await client.send_all(b"GET /feed HTTP/1.1\r\nHost: x\r\n\r\n")
        with trio.fail_after(10):
            await streaming.wait()
            assert any(t.name == "writer" for t in server.connections_nursery.child_tasks)
            while server.connections:  # noqa: ASYNC110 (no event says a connection closed)
                await trio.sleep(0.001)
        server.shutdown()
        await client.aclose()
    assert tasks_at_close == [set()]


@pytest.mark.parametrize("when", ["writing", "cancelled at the drain deadline"])
async def test_a_writer_bug_is_logged_and_ends_only_its_connection(
    when: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in the writer (here its send raising ValueError, alone or while the drain
    deadline cancels it) ends its connection with the error logged, the server serves on and
    stops cleanly, and no task of the connection is left when its socket closes."""
    sends = 0
    original_init = Outbox.__init__

    def init_with_a_buggy_send(self: Outbox, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        send_all = self._send_all

        async def buggy_send_all(data: bytes | bytearray | memoryview) -> None:
            nonlocal sends
            sends += 1
            if when == "writing" and sends > 1:
                raise ValueError("writer bug")
            try:
                await send_all(data)
            except trio.Cancelled:
                raise ValueError("writer bug during cancel") from None

        self._send_all = buggy_send_all

    monkeypatch.setattr(Outbox, "__init__", init_with_a_buggy_send)
    streaming = trio.Event()
    server = Server(_streaming_app(streaming, fail=False), Config(drain_timeout=0.2))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, "127.0.0.1", 0)
            tasks_at_close = _record_tasks_at_close(monkeypatch, server)
            client = await trio.open_tcp_stream("127.0.0.1", server.ports[0])
            await client.send_all(b"GET /feed HTTP/1.1\r\nHost: x\r\n\r\n")
            if when == "writing":
                await client.receive_some(65536)  # (reading: the writer sends again)
                while server.connections:
                    await client.receive_some(65536)
            else:
                await streaming.wait()  # (not reading: the writer waits in send_all)
            server.shutdown()
        await client.aclose()
    assert tasks_at_close == [set()]
    failures = [r for r in caplog.records if r.getMessage() == "connection failed"]
    assert len(failures) == 1
    assert failures[0].exc_info is not None
    assert "writer bug" in repr(failures[0].exc_info[1])
