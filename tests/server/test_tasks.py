"""ConnectionTasks keeps what a per-connection nursery guaranteed: its tasks end before the
connection does, an error in one ends the connection and comes out of it (never out of the
server's nursery), and shutdown still reaches them."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from rawstream import App, Config, Server, SSEStream
from rawstream.server.tasks import ConnectionTasks


async def test_aclose_cancels_running_tasks_and_waits_for_their_cleanup() -> None:
    cleaned: list[str] = []

    async def worker(name: str) -> None:
        try:
            await trio.sleep_forever()
        finally:
            await trio.lowlevel.cancel_shielded_checkpoint()  # (cleanup that takes a step)
            cleaned.append(name)

    async with trio.open_nursery() as nursery:
        owner = trio.CancelScope()
        tasks = ConnectionTasks(nursery, owner)
        tasks.start_soon(worker, "writer", name="writer")
        tasks.start_soon(worker, "receiver")
        await trio.testing.wait_all_tasks_blocked()
        assert tasks.running == 2
        with trio.CancelScope() as caller:
            caller.cancel()  # (the connection itself cancelled: aclose waits regardless)
            await tasks.aclose()
        assert sorted(cleaned) == ["receiver", "writer"]
        assert tasks.running == 0
        assert not owner.cancel_called  # (ending normally cancels only the tasks)
        assert not nursery.child_tasks


async def test_a_task_that_fails_ends_the_connection_not_the_server() -> None:
    async def broken() -> None:
        await trio.lowlevel.checkpoint()
        raise ValueError("a bug in a writer")

    survivor_cancelled = trio.Event()

    async def survivor() -> None:
        try:
            await trio.sleep_forever()
        finally:
            survivor_cancelled.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep, 0.01)  # (the server's nursery has other work: it goes on)
        with trio.CancelScope() as owner:
            tasks = ConnectionTasks(nursery, owner)
            tasks.start_soon(survivor)
            tasks.start_soon(broken)
            await trio.sleep_forever()  # the connection's body: cancelled by the failure
        assert owner.cancelled_caught
        await survivor_cancelled.wait()
        with pytest.raises(ValueError, match="a bug in a writer"):
            await tasks.aclose()


async def test_no_task_starts_once_closed() -> None:
    async with trio.open_nursery() as nursery:
        tasks = ConnectionTasks(nursery, trio.CancelScope())
        await tasks.aclose()
        with pytest.raises(RuntimeError):
            tasks.start_soon(trio.sleep_forever)
        assert not nursery.child_tasks


async def test_cancelling_the_servers_nursery_reaches_the_tasks() -> None:
    ended = trio.Event()

    async def worker() -> None:
        try:
            await trio.sleep_forever()
        finally:
            ended.set()

    async with trio.open_nursery() as nursery:
        tasks = ConnectionTasks(nursery, trio.CancelScope())
        tasks.start_soon(worker)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert ended.is_set()
    await tasks.aclose()  # (a cancellation is not an error of the connection's)


async def test_a_stream_whose_client_left_leaves_no_task_behind() -> None:
    """A real server: an SSE stream's writer runs as a ConnectionTasks task in the server's
    nursery; once the client has gone and the connection closed, none of its tasks is left."""
    app = App()
    streaming = trio.Event()

    @app.sse("/feed")
    async def feed(request: object, stream: SSEStream) -> None:
        streaming.set()
        while True:  # (faster than a client that does not read: the writer waits in send_all)
            await stream.send("x" * 4096)

    server = Server(app, Config())
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve, "127.0.0.1", 0)
        client = await trio.open_tcp_stream("127.0.0.1", server.ports[0])
        await client.send_all(b"GET /feed HTTP/1.1\r\nHost: x\r\n\r\n")
        await client.receive_some(65536)
        await streaming.wait()
        assert server.connections_nursery is not None
        with trio.fail_after(10):
            while not any(t.name == "writer" for t in server.connections_nursery.child_tasks):
                await trio.sleep(0.001)
        await client.aclose()  # (unread data: a reset, so the writer's send fails)
        while server.connections:
            await trio.sleep(0.001)
        names = {task.name for task in server.connections_nursery.child_tasks}
        assert not names & {"writer", "receiver"}, names
        server.shutdown()
