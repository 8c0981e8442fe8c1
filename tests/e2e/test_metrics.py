"""/metrics: scraped by real clients and read back with prometheus-client's parser (a reader
none of us wrote); every value checked to move by exactly what the test did."""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from conftest import require
from httpx_sse import ServerSentEvent, aconnect_sse
from support.rawhttp import exchange, status_of
from support.sse import publish
from websockets.sync.client import connect as ws_connect

from rawstream import App, Event, Request, Response, Server, SlowConsumer, SSEStream, WebSocket
from rawstream.demo import build_demo
from rawstream.hub import Hub
from rawstream.metrics import (
    CONTENT_TYPE,
    OTHER_CHANNELS,
    MetricFamily,
    add_metrics,
    escape_label_value,
    format_value,
    hub_families,
    render,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "OBSERVABILITY.md"

#: A scrape over a raw socket (its bytes are counted exactly).
SCRAPE = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def families(text: str) -> list[Any]:
    """The metric families prometheus-client reads in ``text``."""
    parser = require("prometheus_client.parser", "the tests read /metrics back with it")
    return list(parser.text_string_to_metric_families(text))


def parse(text: str) -> Samples:
    """Every sample of a scrape, by (sample name, labels), through prometheus-client."""
    samples: Samples = {}
    for family in families(text):
        assert family.documentation, f"{family.name} has no HELP"
        assert family.type in ("counter", "gauge"), family
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def scrape(client: httpx.AsyncClient, base: str) -> Samples:
    response = await client.get(base + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    return parse(response.text)


async def wait_for(check: Callable[[], bool]) -> None:
    """Poll ``check()``, a server-side condition with no event to wait on, for up to 5 s."""
    with trio.fail_after(5):
        while not check():  # noqa: ASYNC110 (polls server state)
            await trio.sleep(0.01)


@pytest.fixture
def hub() -> Hub:
    return Hub()


@pytest.fixture
async def server(start_server, hub: Hub) -> Server:
    return await start_server(build_demo(hub))  # type: ignore[no-any-return]


@pytest.fixture
def base(server: Server) -> str:
    return f"http://127.0.0.1:{server.port}"


# -- the writer ---------------------------------------------------------------------------------


def test_writer_format_and_escaping() -> None:
    """HELP/TYPE lines, escaped label values and help, and every kind of value, exactly."""
    family = MetricFamily("demo_things_total", "counter", 'Things.\nWith "quotes" and \\.')
    family.add(1, path='a"b\\c\nd', kind="x")
    family.add(2.5, path="")
    gauge = MetricFamily("demo_level", "gauge", "Levels.")
    for number in (math.inf, -math.inf, math.nan, 0.1, 10**20, True):
        gauge.add(number, n=str(number))
    text = render([family, gauge])
    assert text.splitlines()[:4] == [
        '# HELP demo_things_total Things.\\nWith "quotes" and \\\\.',
        "# TYPE demo_things_total counter",
        'demo_things_total{path="a\\"b\\\\c\\nd",kind="x"} 1',
        'demo_things_total{path=""} 2.5',
    ]
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert [format_value(v) for v in (math.inf, -math.inf, math.nan, 0.1, 10**20, True)] == [
        "+Inf",
        "-Inf",
        "NaN",
        "0.1",
        "100000000000000000000",
        "1",
    ]
    assert escape_label_value('\\"\n') == '\\\\\\"\\n'

    # ... and prometheus-client reads it all back as written.
    things, levels_family = families(text)
    assert things.documentation == 'Things.\nWith "quotes" and \\.'
    assert things.samples[0].labels == {"path": 'a"b\\c\nd', "kind": "x"}
    levels = [s.value for s in levels_family.samples]
    assert levels[:2] == [math.inf, -math.inf] and math.isnan(levels[2])
    assert levels[3:] == [0.1, 1e20, 1]


def test_writer_refuses_what_prometheus_would() -> None:
    """Bad metric or label names, a counter not named *_total, a family twice."""
    for name in ("2xx", "a-b", ""):
        with pytest.raises(ValueError):
            MetricFamily(name, "gauge", "x")
    with pytest.raises(ValueError):
        MetricFamily("requests", "counter", "x")
    for label in ("__reserved", "a-b", "1a"):
        with pytest.raises(ValueError):
            MetricFamily("g", "gauge", "x").add(1, **{label: "v"})
    with pytest.raises(ValueError):
        render([MetricFamily("g", "gauge", "x"), MetricFamily("g", "gauge", "y")])


async def test_hub_channel_series_are_bounded() -> None:
    """Beyond max_channel_series the least busy channels share one series, whose label no
    channel can have; channels without subscribers have none."""
    hub = Hub()
    await hub.publish("quiet", "kept in history, nobody listening")
    async with contextlib.AsyncExitStack() as stack:
        for channel, count in (("a", 3), ("b", 2), ("c", 1), ("d", 1)):
            for _ in range(count):
                await stack.enter_async_context(hub.subscribe(channel))
        await stack.enter_async_context(hub.subscribe(["a", "d"]))  # counts in both
        samples = parse(render(hub_families(hub, max_channel_series=2)))
    subscribers = {
        dict(labels)["channel"]: number
        for (name, labels), number in samples.items()
        if name == "rawstream_hub_subscribers"
    }
    assert subscribers == {"a": 4, "b": 2, OTHER_CHANNELS: 3}  # c 1 + d 2 (b, d: by name)
    assert value(samples, "rawstream_hub_channels") == 5
    assert value(samples, "rawstream_hub_healthy") == 1


# -- scraping the demo --------------------------------------------------------------------------


async def test_every_documented_metric_is_served_and_parses(base: str) -> None:
    """The demo's /metrics: the right content type, text prometheus-client parses, every
    sample under the TYPE line of its family, and exactly the metrics the doc lists."""
    async with httpx.AsyncClient() as client:
        response = await client.get(base + "/metrics")
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = parse(response.text)
    family = ""
    for line in response.text.splitlines():
        if line.startswith("# TYPE "):
            family = line.split()[2]
        elif not line.startswith("#"):
            assert re.split(r"[{ ]", line, maxsplit=1)[0] == family, line
    served = set(re.findall(r"^# TYPE (\S+)", response.text, re.MULTILINE))
    documented = set(re.findall(r"^\| `((?:rawstream|process)_\w+)`", DOCS.read_text(), re.M))
    assert served == documented
    assert value(samples, "rawstream_open_connections", kind="http") == 1  # this scrape
    (info,) = [labels for name, labels in samples if name == "rawstream_process_info"]
    assert dict(info)["pid"] == str(os.getpid())
    # The process figures agree with prometheus-client's own reader of /proc.
    collector = require("prometheus_client.process_collector", "it reads /proc independently")
    theirs = {
        sample.name: sample.value
        for metric in collector.ProcessCollector(registry=None).collect()
        for sample in metric.samples
    }
    assert value(samples, "process_start_time_seconds") == pytest.approx(
        theirs["process_start_time_seconds"], abs=0.05
    )
    assert value(samples, "process_max_fds") == theirs["process_max_fds"]


async def test_bytes_sent_and_received_count_every_byte(server: Server) -> None:
    """Between two scrapes over raw sockets, the byte counters grow by exactly the bytes of
    the first scrape's answer, of one request and answer, and of the second scrape's request."""
    first = await exchange(server.port, SCRAPE)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = await exchange(server.port, request)
    second = await exchange(server.port, SCRAPE)
    before = parse(first.split(b"\r\n\r\n", 1)[1].decode())
    after = parse(second.split(b"\r\n\r\n", 1)[1].decode())

    def grew(name: str) -> float:
        return value(after, name) - value(before, name)

    assert grew("rawstream_sent_bytes_total") == len(first) + len(answer)
    assert grew("rawstream_received_bytes_total") == len(request) + len(SCRAPE)
    assert grew("rawstream_connections_accepted_total") == 2
    assert grew("rawstream_writes_total") >= 2


async def test_sse_streams_subscribers_and_events_sent(base: str) -> None:
    """N streams on a channel: N sse connections and N subscribers; K messages published:
    events sent grows by N*K exactly.  Once they close, both are back to zero."""
    n, k, channel = 3, 5, "metrics-test"
    async with httpx.AsyncClient() as client:
        async with contextlib.AsyncExitStack() as stack:
            streams: list[AsyncIterator[ServerSentEvent]] = []
            for _ in range(n):
                source = await stack.enter_async_context(
                    aconnect_sse(client, "GET", f"{base}/events?channel={channel}")
                )
                streams.append(source.aiter_sse())
            for events in streams:  # the id-only opening event: subscribed, counted
                assert (await events.__anext__()).data == ""
            before = await scrape(client, base)
            assert value(before, "rawstream_open_connections", kind="sse") == n
            assert value(before, "rawstream_open_streams") == n
            assert value(before, "rawstream_hub_subscribers", channel=channel) == n
            for i in range(k):
                await publish(client, base, channel, f"m{i}")
            with trio.fail_after(5):
                for events in streams:
                    assert [(await events.__anext__()).data for _ in range(k)] == [
                        f"m{i}" for i in range(k)
                    ]
            after = await scrape(client, base)
            sent = value(after, "rawstream_events_sent_total")
            assert sent - value(before, "rawstream_events_sent_total") == n * k
        closed = await scrape(client, base)
        with trio.fail_after(5):  # (the server sees the streams close a moment later)
            while value(closed, "rawstream_open_connections", kind="sse"):
                await trio.sleep(0.01)
                closed = await scrape(client, base)
    assert ("rawstream_hub_subscribers", frozenset({("channel", channel)})) not in closed
    assert value(closed, "rawstream_events_sent_total") == sent  # (nothing more was sent)


async def test_websocket_echo_counts_each_message(base: str) -> None:
    """An echo of M messages through the websockets client: one websocket connection
    while open, and events sent grows by exactly M."""
    m = 7

    def talk() -> tuple[Samples, list[str | bytes], Samples]:
        with httpx.Client() as client:
            before = parse(client.get(base + "/metrics").text)
            ws_url = base.replace("http://", "ws://") + "/ws/echo"
            with ws_connect(ws_url) as ws:
                echoes = []
                for i in range(m):
                    ws.send(f"message {i}")
                    echoes.append(ws.recv(timeout=5))
                during = parse(client.get(base + "/metrics").text)
        return before, echoes, during

    before, echoes, during = await trio.to_thread.run_sync(talk)
    assert echoes == [f"message {i}" for i in range(m)]
    assert value(during, "rawstream_open_connections", kind="websocket") == 1
    assert value(during, "rawstream_open_streams") == 1
    grew = value(during, "rawstream_events_sent_total") - value(
        before, "rawstream_events_sent_total"
    )
    assert grew == m


async def test_a_slow_consumer_disconnected_is_counted(start_server, hub: Hub) -> None:
    """A client that reads nothing, on a DISCONNECT stream (/events), fed until its outbox
    is full: it is disconnected, and the counter says 1."""
    server: Server = await start_server(
        build_demo(hub), outbox_high_bytes=16 * 1024, outbox_low_bytes=4 * 1024
    )
    base = f"http://127.0.0.1:{server.port}"
    sock = trio.socket.socket()
    sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", server.port))
    stalled = trio.SocketStream(sock)
    async with stalled, httpx.AsyncClient() as client:
        await stalled.send_all(b"GET /events?channel=slow HTTP/1.1\r\nHost: x\r\n\r\n")
        await wait_for(lambda: hub.subscriber_counts().get("slow") == 1)
        assert value(await scrape(client, base), "rawstream_hub_subscribers", channel="slow") == 1
        with trio.fail_after(10):
            while not server.slow_consumers_disconnected:
                await hub.publish("slow", "x" * 32 * 1024)
        samples = await scrape(client, base)
    assert value(samples, "rawstream_slow_consumers_disconnected_total") == 1
    assert value(samples, "rawstream_events_dropped_total") == 0


async def test_outbox_depth_of_a_client_that_stopped_reading(start_server) -> None:
    """A /stream client (BLOCK policy) that reads nothing: its outbox fills to high water and
    stays there; it is the largest, and the only one with bytes queued."""
    high = 64 * 1024
    server: Server = await start_server(
        build_demo(), outbox_high_bytes=high, outbox_low_bytes=16 * 1024
    )
    base = f"http://127.0.0.1:{server.port}"
    sock = trio.socket.socket()
    sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", server.port))
    async with trio.SocketStream(sock) as stalled, httpx.AsyncClient() as client:
        await stalled.send_all(b"GET /stream?n=0&size=1000 HTTP/1.1\r\nHost: x\r\n\r\n")
        await wait_for(lambda: server.statistics().bytes_buffered >= high)
        samples = await scrape(client, base)
    queued = value(samples, "rawstream_outbox_bytes")
    assert queued >= high
    assert value(samples, "rawstream_outbox_largest_bytes") == queued
    assert value(samples, "rawstream_open_connections", kind="sse") == 1


@pytest.mark.parametrize(
    ("limits", "status", "reason"),
    [
        ({"max_connections": 2}, 503, "overloaded"),
        ({"max_connections_per_client": 2}, 429, "per_client"),
    ],
)
async def test_a_refused_connection_is_counted_by_reason(
    start_server, limits: dict[str, int], status: int, reason: str
) -> None:
    """Two streams held, a third connection refused (503 at max_connections, 429 at the
    per-address cap); once the streams close, a scrape shows one refusal for its reason and
    four connections accepted (two streams, the refused one, the scrape)."""
    server: Server = await start_server(build_demo(), **limits)
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient() as client:
        async with (
            aconnect_sse(client, "GET", base + "/events") as first,
            aconnect_sse(client, "GET", base + "/events") as second,
        ):
            await first.aiter_sse().__anext__()
            await second.aiter_sse().__anext__()
            refused = await exchange(server.port, SCRAPE)
            assert status_of(refused) == status
        await wait_for(lambda: not server.connections)
        samples = await scrape(client, base)
    for known in ("overloaded", "per_client", "closed_at_once"):
        count = value(samples, "rawstream_connections_rejected_total", reason=known)
        assert count == (1 if known == reason else 0)
    assert value(samples, "rawstream_connections_accepted_total") == 4


# -- connection kinds, on an app of our own -----------------------------------------------------


async def test_each_kind_of_connection_is_told_apart(start_server) -> None:
    """An SSE stream, a streamed body and a WebSocket open at once, and the scrape itself:
    one of each kind, three streams (add_metrics on an app without a hub, with a collector
    of its own)."""
    app = App()
    add_metrics(app, collectors=[lambda: [MetricFamily("app_answer", "gauge", "It.").add(42)]])
    release = trio.Event()

    @app.sse("/sse")
    async def sse(request: Request, stream: SSEStream) -> None:
        await stream.send("open")
        await release.wait()

    async def body() -> AsyncIterator[bytes]:
        yield b"first chunk\n"
        await release.wait()

    @app.get("/body")
    async def streamed(request: Request) -> Response:
        return Response(body(), content_type="text/plain")

    @app.websocket("/ws")
    async def websocket(ws: WebSocket) -> None:
        await ws.send("open")
        await release.wait()

    server: Server = await start_server(app)
    base = f"http://127.0.0.1:{server.port}"

    def websocket_open_while(token: trio.lowlevel.TrioToken) -> Samples:
        """(In a thread: the websockets client is synchronous.)"""
        with ws_connect(base.replace("http://", "ws://") + "/ws") as ws:
            assert ws.recv(timeout=5) == "open"
            return trio.from_thread.run(scrape_with_streams, trio_token=token)

    async def scrape_with_streams() -> Samples:
        async with (
            httpx.AsyncClient() as client,
            aconnect_sse(client, "GET", base + "/sse") as source,
            client.stream("GET", base + "/body") as response,
        ):
            assert (await source.aiter_sse().__anext__()).data == "open"
            assert await response.aiter_lines().__anext__() == "first chunk"
            samples = await scrape(client, base)
            release.set()
            return samples

    samples = await trio.to_thread.run_sync(
        websocket_open_while, trio.lowlevel.current_trio_token()
    )
    kinds = {
        dict(labels)["kind"]: number
        for (name, labels), number in samples.items()
        if name == "rawstream_open_connections"
    }
    assert kinds == {"idle": 0, "http": 1, "sse": 1, "stream": 1, "websocket": 1}
    assert value(samples, "rawstream_open_streams") == 3
    assert not any(name.startswith("rawstream_hub_") for name, _ in samples)
    assert value(samples, "app_answer") == 42


async def test_a_broken_collector_costs_only_its_own_metrics(start_server, caplog) -> None:
    """A collector that raises, or reuses a name rawstream reports, is left out (and logged);
    the scrape still answers with everything else."""

    def broken() -> list[MetricFamily]:
        raise RuntimeError("the queue is gone")

    def clashing() -> list[MetricFamily]:
        return [MetricFamily("rawstream_open_streams", "gauge", "Again.").add(7)]

    app = App()
    add_metrics(
        app, collectors=[broken, clashing, lambda: [MetricFamily("app_up", "gauge", "Up.").add(1)]]
    )
    server: Server = await start_server(app)
    async with httpx.AsyncClient() as client:
        samples = await scrape(client, f"http://127.0.0.1:{server.port}")
    assert value(samples, "app_up") == 1
    assert value(samples, "rawstream_open_streams") == 0
    failures = [r for r in caplog.records if r.name == "rawstream.metrics"]
    assert len(failures) == 2
    assert "the queue is gone" in str(failures[0].exc_info[1])
    assert "already reported" in str(failures[1].exc_info[1])


async def test_events_dropped_match_the_gaps_the_client_is_told(start_server) -> None:
    """A DROP_OLDEST stream to a client that reads nothing while 300 events of 1 KiB are
    queued: the scrape's dropped count equals the sum of the gap events the client then reads,
    and the events it reads are the rest of the 300 (all 300 counted as sent)."""
    app = App()
    add_metrics(app)
    sent = trio.Event()

    @app.sse("/drop", slow_consumer=SlowConsumer.DROP_OLDEST)
    async def drop(request: Request, stream: SSEStream) -> None:
        for i in range(300):
            stream.send_nowait(Event("x" * 1024, id=str(i)))
            await trio.lowlevel.checkpoint()  # (the writer's turns: kernel, then outbox, fill)
        sent.set()

    server: Server = await start_server(app, outbox_high_bytes=8 * 1024, outbox_low_bytes=2048)
    sock = trio.socket.socket()
    sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", server.port))
    async with trio.SocketStream(sock) as stalled, httpx.AsyncClient() as client:
        await stalled.send_all(b"GET /drop HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        with trio.fail_after(5):
            await sent.wait()
        samples = await scrape(client, f"http://127.0.0.1:{server.port}")
        received = bytearray()
        with trio.fail_after(5):
            while chunk := await stalled.receive_some():
                received += chunk
    dropped = value(samples, "rawstream_events_dropped_total")
    assert value(samples, "rawstream_events_sent_total") == 300
    gaps = [int(n) for n in re.findall(rb'data: \{"dropped": (\d+)\}', received)]
    delivered = re.findall(rb"id: (\d+)\n", received)
    assert dropped > 0 and sum(gaps) == dropped
    assert len(delivered) + dropped == 300
    assert delivered[-1] == b"299"
