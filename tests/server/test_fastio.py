"""The hot path's shortcuts around Trio (server/fastio.py), over real loopback TCP sockets:
direct socket I/O, paced checkpoints, the outbox's write-through and fan-out fast path, and a
receiver handing its socket to a WebSocket's frame reader."""

from __future__ import annotations

import socket
import struct
import time

import pytest
import trio
import trio.testing

from rawstream.pacing import paced_checkpoint
from rawstream.server import fastio
from rawstream.server import outbox as outbox_module
from rawstream.server.fastio import SocketIO, socket_io
from rawstream.server.outbox import Outbox
from rawstream.server.receiver import Receiver


async def tcp_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    """A connected pair of plain TCP streams on 127.0.0.1 (server side first)."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    try:
        port = listeners[0].socket.getsockname()[1]
        client = await trio.open_tcp_stream("127.0.0.1", port)
        server = await listeners[0].accept()
    finally:
        for listener in listeners:
            await listener.aclose()
    return server, client


async def receive_exactly(stream: trio.SocketStream, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = await stream.receive_some(65536)
        assert chunk, "EOF too early"
        data += chunk
    return data


async def test_socket_io_moves_bytes_and_reports_eof_and_close() -> None:
    server, client = await tcp_pair()
    io = socket_io(server)
    assert isinstance(io, SocketIO)
    payload = b"x" * 3_000_000  # more than the kernel takes at once: partial writes
    async with trio.open_nursery() as nursery:
        nursery.start_soon(io.send_all, payload)
        assert await receive_exactly(client, len(payload)) == payload
    await client.send_all(b"hello")
    assert await io.receive_some(100) == b"hello"
    await client.aclose()
    assert await io.receive_some(100) == b""  # EOF
    await server.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await io.receive_some(100)  # the fd is read per call: -1 once closed, never reused
    with pytest.raises(trio.ClosedResourceError):
        await io.send_all(b"late")


async def test_socket_io_reports_a_reset_as_broken() -> None:
    server, client = await tcp_pair()
    io = socket_io(server)
    assert io is not None
    # Close with SO_LINGER 0: the peer gets a reset, not a FIN.
    client.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await client.aclose()
    with pytest.raises(trio.BrokenResourceError):
        await io.receive_some(100)
    await server.aclose()


async def test_without_direct_io_socket_io_leaves_every_stream_to_trio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Off POSIX (forced here with DIRECT_IO, read at each call) a real SocketStream gets no
    SocketIO, so the outbox and the receiver fall back to its own send_all/receive_some."""
    server, client = await tcp_pair()
    monkeypatch.setattr(fastio, "DIRECT_IO", True)
    assert isinstance(socket_io(server), SocketIO)
    monkeypatch.setattr(fastio, "DIRECT_IO", False)
    assert socket_io(server) is None
    assert socket_io(client) is None
    # And the outbox does then write through Trio: no write-through, bytes still delivered.
    monkeypatch.setattr(outbox_module, "WRITE_THROUGH_GAP", 0)
    outbox = Outbox(server, high_water=1000)
    outbox.put_nowait(b"hello", write_through=True)
    assert (outbox.buffered, outbox.writes) == (5, 0)  # queued for the writer, not written
    async with trio.open_nursery() as nursery:
        outbox.attach(nursery)
        assert await receive_exactly(client, 5) == b"hello"
        nursery.cancel_scope.cancel()
    await server.aclose()
    await client.aclose()


async def test_paced_checkpoint_still_lets_other_tasks_run() -> None:
    """A loop that only awaits paced_checkpoint yields at least every PACE_INTERVAL."""
    turns = 0

    async def other() -> None:
        nonlocal turns
        while True:
            turns += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        await trio.lowlevel.checkpoint()
        start = turns
        give_up = time.perf_counter() + 5
        while turns < start + 3:
            assert time.perf_counter() < give_up, "the paced loop starved the other task"
            await paced_checkpoint()
        nursery.cancel_scope.cancel()


async def test_paced_checkpoint_is_a_cancellation_point() -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        await paced_checkpoint()
        pytest.fail("not cancelled")


async def test_write_through_writes_an_idle_outbox_item_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No writer task runs here: a write-through item reaches the client anyway; one put
    within the gap after it waits in the outbox for the writer (it batches)."""
    monkeypatch.setattr(outbox_module, "WRITE_THROUGH_GAP", 3600)  # (no timing in the test)
    server, client = await tcp_pair()
    outbox = Outbox(server, high_water=1000)
    outbox.put_nowait(b"first", write_through=True)
    assert (outbox.buffered, outbox.writes) == (0, 1)
    assert await receive_exactly(client, 5) == b"first"
    outbox.put_nowait(b"second", write_through=True)  # within the gap: it waits for the writer
    assert outbox.buffered == 6
    outbox.put_nowait(b"fanout")  # never written through (a fan-out must not make syscalls)
    assert outbox.buffered == 12
    async with trio.open_nursery() as nursery:
        outbox.attach(nursery)
        assert await receive_exactly(client, 12) == b"secondfanout"
        nursery.cancel_scope.cancel()
    await server.aclose()
    await client.aclose()


async def test_put_shared_refuses_unless_a_stream_runs_with_room() -> None:
    server, client = await tcp_pair()
    outbox = Outbox(server, high_water=10)
    assert not outbox.put_shared(b"event")  # no stream running
    outbox.streaming = True
    assert outbox.put_shared(b"0123456789")
    assert not outbox.put_shared(b"more")  # at high water: the caller's policy decides
    assert outbox.buffered == 10
    await server.aclose()
    await client.aclose()


async def test_receiver_hands_its_socket_to_the_caller() -> None:
    """After hand_off, what was read ahead comes first, then receive() reads the socket in
    its caller's task, and sees EOF."""
    server, client = await tcp_pair()
    receiver = Receiver(server, limit=65536)
    async with trio.open_nursery() as nursery:
        receiver.start(nursery)
        await client.send_all(b"ahead")
        with trio.fail_after(5):
            while receiver.buffered < 5:
                await trio.testing.wait_all_tasks_blocked()  # the receiver reads ahead
        receiver.hand_off()
        await client.send_all(b"direct")
        received = b""
        with trio.fail_after(5):
            while len(received) < 11:
                received += await receiver.receive()
        assert received == b"aheaddirect"
        await client.aclose()
        with trio.fail_after(5):
            assert await receiver.receive() == b""
        assert receiver.closed
        assert receiver.bytes_received == 11
    await server.aclose()
