"""Long tasks (``POST /tasks``) and their progress over SSE, as httpx + httpx-sse see them."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
from httpx_sse import ServerSentEvent, aconnect_sse

from rawstream import App
from rawstream.demo import build_demo
from rawstream.demo.tasks import MAX_INTERVAL_MS, MAX_STEPS, add_tasks
from rawstream.hub import BrokerUnavailable, Hub, sse_channels


@pytest.fixture
async def base(start_server) -> str:
    server = await start_server(build_demo(Hub()))
    return f"http://127.0.0.1:{server.port}"


async def start_task(client: httpx.AsyncClient, base: str, query: str) -> dict[str, str]:
    """POST /tasks?QUERY; the answer, checked for its shape."""
    response = await client.post(f"{base}/tasks?{query}")
    assert response.status_code == 202, response.text
    task = response.json()
    assert set(task) == {"id", "channel", "last_event_id", "events"}
    assert task["channel"] == f"task/{task['id']}"
    events = f"/events?channel={task['channel']}&last_event_id={task['last_event_id']}"
    assert task["events"] == events
    return task


async def follow(
    client: httpx.AsyncClient,
    url: str,
    *,
    last_event_id: str | None = None,
    stop_after: int | None = None,
) -> list[ServerSentEvent]:
    """The data events of a task's stream, up to ``done`` (or ``stop_after`` of them)."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    events: list[ServerSentEvent] = []
    with trio.fail_after(10):
        async with aconnect_sse(client, "GET", url, headers=headers) as source:
            async for event in source.aiter_sse():
                if not event.data:  # the opening id-only event
                    continue
                events.append(event)
                if event.event == "done" or len(events) == stop_after:
                    break
    return events


def states(events: list[ServerSentEvent]) -> list[tuple[str, int, int, int]]:
    """(event, done, total, percent) of each event."""
    return [(e.event, (d := json.loads(e.data))["done"], d["total"], d["percent"]) for e in events]


async def test_task_reports_every_step_then_done(base: str) -> None:
    """Following the answer's events URL gives one progress event per step, then done, with
    increasing ids: nothing the task did before the client connected is missed."""
    async with httpx.AsyncClient() as client:
        task = await start_task(client, base, "steps=4&interval=20")
        events = await follow(client, base + task["events"])
    assert states(events) == [
        ("progress", 1, 4, 25),
        ("progress", 2, 4, 50),
        ("progress", 3, 4, 75),
        ("progress", 4, 4, 100),
        ("done", 4, 4, 100),
    ]
    ids = [e.id for e in events]
    assert len(set(ids)) == len(ids) and task["last_event_id"] not in ids


async def test_a_late_follower_replays_the_whole_task(base: str) -> None:
    """A client that connects after the task ended still gets every event, the same ones."""
    async with httpx.AsyncClient() as client:
        task = await start_task(client, base, "steps=3&interval=1")
        first = await follow(client, base + task["events"])
        again = await follow(client, base + task["events"])
    assert [(e.id, e.event, e.data) for e in again] == [(e.id, e.event, e.data) for e in first]
    assert states(again)[-1] == ("done", 3, 3, 100)


async def test_a_dropped_follower_resumes_without_gap_or_duplicate(base: str) -> None:
    """Disconnect after two steps, reconnect with Last-Event-ID: the rest, each step once."""
    async with httpx.AsyncClient() as client:
        task = await start_task(client, base, "steps=6&interval=40")
        url = f"{base}/events?channel={task['channel']}"
        head = await follow(client, url, last_event_id=task["last_event_id"], stop_after=2)
        await trio.sleep(0.1)  # the task goes on while nobody listens
        rest = await follow(client, url, last_event_id=head[-1].id)
    done = [state[1] for state in states(head + rest)]
    assert done == [1, 2, 3, 4, 5, 6, 6]
    assert states(rest)[-1][0] == "done"


@pytest.mark.parametrize(
    "query",
    [
        "steps=0",
        f"steps={MAX_STEPS + 1}",
        "steps=ten",
        "steps=3&interval=0",
        f"steps=3&interval={MAX_INTERVAL_MS + 1}",
        "steps=3&interval=1.5",
    ],
)
async def test_bad_parameters_get_400(base: str, query: str) -> None:
    """Steps and interval out of bounds or not integers: 400 saying which, no task."""
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{base}/tasks?{query}")
    assert response.status_code == 400
    assert query.split("&")[-1].split("=")[0] in response.text


async def test_tasks_only_answer_post(base: str) -> None:
    """GET /tasks: 405 naming POST."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{base}/tasks")
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]


def task_app(hub: Hub, max_jobs: int) -> App:
    """The tasks routes alone over ``hub``, with a small cap."""
    app = App()
    app.service(hub.run)
    sse_channels(app, "/events", hub)
    add_tasks(app, hub, max_jobs=max_jobs)
    return app


async def test_running_tasks_are_capped(start_server) -> None:
    """Past max_jobs running tasks a start gets 503 with Retry-After; a finished task frees
    its slot."""
    server = await start_server(task_app(Hub(), max_jobs=2))
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient() as client:
        quick = await start_task(client, base, "steps=2&interval=50")
        await start_task(client, base, f"steps={MAX_STEPS}&interval={MAX_INTERVAL_MS}")
        refused = await client.post(f"{base}/tasks?steps=1")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert "2 tasks are running" in refused.json()["error"]
        await follow(client, base + quick["events"])  # to its end
        await start_task(client, base, "steps=1&interval=1")


class FlakyHub(Hub):
    """An in-memory hub whose next ``n`` publishes fail (a broker outage): ``fail(n)``, then
    ``await hub.outage_over.wait()``."""

    def __init__(self) -> None:
        super().__init__()
        self.to_fail = 0
        self.outage_over = trio.Event()

    def fail(self, n: int) -> None:
        self.to_fail = n
        self.outage_over = trio.Event()

    async def publish(self, channel: str, data: str | bytes, event: str | None = None) -> str:
        if self.to_fail:
            self.to_fail -= 1
            if not self.to_fail:
                self.outage_over.set()
            await trio.lowlevel.checkpoint()
            raise BrokerUnavailable("the broker is down (test)")
        return await super().publish(channel, data, event)


async def test_broker_down_at_start_gets_503_and_frees_the_slot(start_server) -> None:
    """A task whose first event cannot be published is not started (503), and does not keep
    a slot: with the broker back, a start succeeds under max_jobs=1."""
    hub = FlakyHub()
    server = await start_server(task_app(hub, max_jobs=1))
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient() as client:
        hub.fail(1)
        refused = await client.post(f"{base}/tasks?steps=2")
        assert refused.status_code == 503
        assert "broker is unavailable" in refused.json()["error"]
        task = await start_task(client, base, "steps=2&interval=1")
        assert states(await follow(client, base + task["events"]))[-1] == ("done", 2, 2, 100)


async def test_progress_lost_in_an_outage_is_made_good_by_the_next(start_server) -> None:
    """Progress events that fail to publish mid-task are skipped, not fatal: the task goes on
    and its later events state the whole progress."""
    hub = FlakyHub()
    server = await start_server(task_app(hub, max_jobs=4))
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient() as client:
        task = await start_task(client, base, "steps=6&interval=50")
        url = base + task["events"]
        head = await follow(client, url, stop_after=1)
        hub.fail(2)  # the next two steps go unpublished
        with trio.fail_after(5):
            await hub.outage_over.wait()
        rest = await follow(client, url, last_event_id=head[-1].id)
    events = states(head + rest)
    assert events[-1] == ("done", 6, 6, 100)
    progress = [done for kind, done, _, _ in events if kind == "progress"]
    assert progress == sorted(progress) and progress[-1] == 6
    lost = sorted(set(range(1, 7)) - set(progress))
    assert len(lost) == 2 and lost[1] == lost[0] + 1
