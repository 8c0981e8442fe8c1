"""Graceful shutdown: SSE streams end with a jittered retry:, WebSockets get 1001."""

from __future__ import annotations

import signal
from functools import partial

import httpx
import pytest
import trio
import trio.testing
from support.cli import start_cli
from support.rawhttp import websocket_upgrade
from support.testapp import Probes, build_app
from trio_websocket import ConnectionClosed, open_websocket_url

from rawstream import Server, serve


async def read_sse_until_end(
    client: httpx.AsyncClient, url: str, started: trio.Event, out: list[str]
) -> None:
    async with client.stream("GET", url) as response:
        started.set()
        async for line in response.aiter_lines():
            out.append(line)


async def test_shutdown_ends_streams_gracefully(start_server) -> None:
    """On shutdown, SSE gets retry: in range then a clean end, and a WebSocket gets 1001."""
    probes = Probes()
    server: Server = await start_server(
        build_app(probes), shutdown_retry_ms=(3000, 4000), drain_timeout=5
    )
    base = f"http://127.0.0.1:{server.port}"
    lines: list[str] = []
    sse_open = trio.Event()
    ws_code: list[int] = []
    ws_open = trio.Event()

    async def websocket_client() -> None:
        async with open_websocket_url(f"ws://127.0.0.1:{server.port}/ws/echo") as ws:
            await ws.send_message("ping")
            await ws.get_message()
            ws_open.set()
            try:
                await ws.get_message()
            except ConnectionClosed as exc:
                ws_code.append(exc.reason.code)

    async with httpx.AsyncClient(timeout=10) as client, trio.open_nursery() as nursery:
        nursery.start_soon(read_sse_until_end, client, base + "/sse/forever", sse_open, lines)
        nursery.start_soon(websocket_client)
        with trio.fail_after(5):
            await sse_open.wait()
            await ws_open.wait()
            await probes.started.wait()
        server.shutdown()
    # Both clients returned by themselves: the stream ended cleanly (no read error).
    retry = [int(line.split(":")[1]) for line in lines if line.startswith("retry:")]
    assert len(retry) == 1 and 3000 <= retry[0] <= 4000
    assert ws_code == [1001]
    assert probes.cleaned_up.is_set()


async def test_new_connections_refused_after_shutdown() -> None:
    """Once serve() has returned after shutdown, the listener is closed."""
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(partial(serve, build_app(Probes()), port=0))
        server.shutdown()  # the nursery waits for serve() to drain and return
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", server.port)


async def test_drain_deadline_cancels_the_rest(start_server) -> None:
    """A WebSocket handler that ignores the close is cancelled at the drain deadline."""
    probes = Probes()
    server: Server = await start_server(build_app(probes), drain_timeout=0.5, close_timeout=30)
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    await stream.send_all(websocket_upgrade("/ws/hold"))
    with trio.fail_after(5):
        await probes.started.wait()
    server.shutdown()  # our raw client never answers the 1001 close frame
    with trio.fail_after(5):
        await probes.cleaned_up.wait()
    assert probes.handler_cancelled
    await stream.aclose()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_drains_and_exits_zero(signum: int) -> None:
    """The demo process ends an open SSE stream with retry: on SIGTERM or SIGINT and exits 0."""
    process, port = await trio.to_thread.run_sync(start_cli, "demo")
    try:
        lines: list[str] = []
        signalled = False
        async with (
            httpx.AsyncClient(timeout=10) as client,
            client.stream("GET", f"http://127.0.0.1:{port}/events") as response,
        ):
            async for line in response.aiter_lines():
                lines.append(line)
                if line == "event: tick" and not signalled:
                    signalled = True
                    process.send_signal(signum)
        # The loop ended because the server ended the stream cleanly (a reset would raise).
        assert any(line.startswith("retry:") for line in lines)
        code = await trio.to_thread.run_sync(lambda: process.wait(10))
        assert code == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_streamed_download_in_progress_finishes(start_server) -> None:
    """Shutdown lets a plain streamed response finish whole (only SSE streams are ended)."""
    probes = Probes()
    server: Server = await start_server(build_app(probes), drain_timeout=5)
    body = bytearray()
    async with (
        httpx.AsyncClient() as client,
        client.stream("GET", f"http://127.0.0.1:{server.port}/slow-download") as response,
    ):
        async for chunk in response.aiter_bytes():
            body += chunk
            if not probes.gate.is_set():  # after part one: shut down mid-response
                with trio.fail_after(5):
                    await probes.started.wait()
                server.shutdown()
                await trio.testing.wait_all_tasks_blocked()  # the drain has begun
                probes.gate.set()
    assert bytes(body) == b"part one;part two"


async def test_websocket_not_yet_accepted_gets_503(start_server) -> None:
    """Shutdown cancels a WebSocket handler that has not accepted; the client gets 503."""
    from support.rawhttp import status_of

    probes = Probes()
    server: Server = await start_server(build_app(probes), drain_timeout=5)
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        await stream.send_all(websocket_upgrade("/ws/slow-accept"))
        with trio.fail_after(5):
            await probes.started.wait()
        server.shutdown()
        with trio.fail_after(5):
            response = await stream.receive_some(1000)
            await probes.cleaned_up.wait()
    assert status_of(response) == 503


async def test_services_stop_last_started_first() -> None:
    """After the drain, services stop one at a time in reverse order, so a service's cleanup
    can still use the ones started before it (a job publishing its end through the hub)."""
    from rawstream import App

    app = App()
    running: set[str] = set()
    seen_at_stop: dict[str, set[str]] = {}

    def make(name: str):
        async def service(*, task_status=trio.TASK_STATUS_IGNORED) -> None:
            running.add(name)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                seen_at_stop[name] = set(running)
                with trio.CancelScope(shield=True):
                    await trio.sleep(0.01)  # a cleanup that takes a moment
                running.discard(name)

        return service

    for name in ("hub", "ticker", "jobs"):
        app.service(make(name))
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(partial(serve, app, host="127.0.0.1", port=0))
        server.shutdown()
    assert seen_at_stop == {
        "jobs": {"hub", "ticker", "jobs"},
        "ticker": {"hub", "ticker"},
        "hub": {"hub"},
    }
