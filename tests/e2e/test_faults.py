"""Abrupt disconnects: 500 clients reset mid-stream leave nothing behind (loopback, bounded)."""

from __future__ import annotations

import os
import socket
import struct

import trio
import trio.testing

from rawstream import App, Event, Request, SSEStream

CLIENTS = 500
BATCH = 50


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def count_tasks() -> int:
    """Every task in this trio run, found by walking the task tree from the root."""
    count = 0
    pending = [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        count += 1
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return count


async def reset_mid_stream(port: int) -> None:
    """Open a stream, read its first event, then close with RST (SO_LINGER 0)."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        await sock.connect(("127.0.0.1", port))
        await sock.send(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while b"id: 0" not in received:
            received += await sock.recv(65536)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def test_500_resets_leave_no_descriptors_tasks_or_handlers(start_server) -> None:
    """After 500 RSTs mid-stream: every handler's cleanup ran, no fds and no tasks remain."""
    app = App()
    started = cleaned = 0

    @app.sse("/stream")
    async def stream(request: Request, stream: SSEStream) -> None:
        nonlocal started, cleaned
        started += 1
        try:
            i = 0
            while True:
                await stream.send(Event("x" * 200, id=str(i)))
                i += 1
                if i % 20 == 0:
                    await trio.sleep(0.001)
        finally:
            cleaned += 1

    server = await start_server(app)
    with trio.fail_after(5):  # the server's own tasks started and idle: the baseline
        await trio.testing.wait_all_tasks_blocked()
    fds_before, tasks_before = open_fds(), count_tasks()
    for _ in range(CLIENTS // BATCH):
        async with trio.open_nursery() as nursery:
            for _ in range(BATCH):
                nursery.start_soon(reset_mid_stream, server.port)
    with trio.fail_after(10):
        while server.connections or cleaned < CLIENTS:  # noqa: ASYNC110 (server-side state)
            await trio.sleep(0.01)
    assert started == cleaned == CLIENTS
    assert open_fds() == fds_before
    assert count_tasks() == tasks_before
    assert server.statistics().connections == 0
