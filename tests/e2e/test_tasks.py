"""Long tasks (``POST /tasks``) and their progress over SSE, as httpx + httpx-sse see them."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any

import httpx
import pytest
import trio
from httpx_sse import ServerSentEvent
from support.sse import collect_events, has_data

from rawstream import App, serve
from rawstream.demo import build_demo
from rawstream.demo.tasks import MAX_INTERVAL_MS, MAX_STEPS, MAX_TASK_MS, add_tasks
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
    events = await collect_events(
        client,
        url,
        stop_after,
        until=lambda event: event.event in ("done", "cancelled"),
        last_event_id=last_event_id,
    )
    return [event for event in events if has_data(event)]  # not the opening id-only event


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
        # The task goes on while this follower is away: another client sees two more steps.
        meanwhile = await follow(client, url, last_event_id=head[-1].id, stop_after=2)
        rest = await follow(client, url, last_event_id=head[-1].id)
    done = [state[1] for state in states(head + rest)]
    assert done == [1, 2, 3, 4, 5, 6, 6]
    assert [(e.id, e.data) for e in rest[:2]] == [(e.id, e.data) for e in meanwhile]
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
        f"steps={MAX_STEPS}&interval={MAX_TASK_MS // MAX_STEPS + 1}",
    ],
)
async def test_bad_parameters_get_400(base: str, query: str) -> None:
    """Steps and interval out of bounds or not integers: 400 saying which, no task."""
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{base}/tasks?{query}")
    assert response.status_code == 400
    assert query.split("&")[-1].split("=")[0] in response.text


async def test_a_task_longer_than_five_minutes_is_refused(base: str) -> None:
    """steps * interval over MAX_TASK_MS: 400 saying the limit; exactly at it: accepted."""
    async with httpx.AsyncClient() as client:
        too_long = await client.post(f"{base}/tasks?steps=31&interval=10000")
        assert too_long.status_code == 400
        assert f"at most {MAX_TASK_MS} ms (5 minutes)" in too_long.text
        assert "310000" in too_long.text
        await start_task(client, base, f"steps=30&interval={MAX_INTERVAL_MS}")


async def test_many_steps_publish_only_whole_percent_changes(base: str) -> None:
    """A 1000-step task publishes when the whole percent goes up: with the 0 % event the
    answer names, at most 102 events, percents strictly increasing to 100, then done."""
    async with httpx.AsyncClient() as client:
        task = await start_task(client, base, "steps=1000&interval=1")
        events = await follow(client, base + task["events"])  # after the 0 % event
    progress = [state for state in states(events) if state[0] == "progress"]
    percents = [percent for _, _, _, percent in progress]
    assert percents == list(range(1, 101))  # one per percent, each 10 steps on
    assert [done for _, done, _, _ in progress] == list(range(10, 1001, 10))
    assert states(events)[-1] == ("done", 1000, 1000, 100)


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
        await start_task(client, base, f"steps=30&interval={MAX_INTERVAL_MS}")
        refused = await client.post(f"{base}/tasks?steps=1")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"  # the quick one ends within a second
        assert "2 tasks are running" in refused.json()["error"]
        await follow(client, base + quick["events"])  # to its end
        await start_task(client, base, "steps=1&interval=1")


async def test_retry_after_says_when_the_first_running_task_ends(start_server) -> None:
    """With every slot held by a 30 s task, Retry-After is the seconds left until it ends
    (rounded up), not a blanket 1: a client that waits that long does not ask in vain."""
    server = await start_server(task_app(Hub(), max_jobs=1))
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient() as client:
        await start_task(client, base, f"steps=3&interval={MAX_INTERVAL_MS}")
        refused = await client.post(f"{base}/tasks?steps=1")
    assert refused.status_code == 503
    # 30 s from the start, minus the (short) time this test took to ask: never more.
    assert 20 <= int(refused.headers["retry-after"]) <= 30


async def test_a_task_cut_short_by_shutdown_ends_with_cancelled(start_server) -> None:
    """The server stops mid-task: the job publishes a last ``cancelled`` event stating how far
    it got and why, so a follower (here through another server on the same hub, as after a
    restart with a shared broker) sees an end instead of silence."""
    hub = Hub()
    async with trio.open_nursery() as nursery:
        first = await nursery.start(partial(serve, task_app(hub, 4), host="127.0.0.1", port=0))
        base = f"http://127.0.0.1:{first.port}"
        async with httpx.AsyncClient() as client:
            task = await start_task(client, base, "steps=100&interval=1000")
        first.shutdown()  # drain, then the services (and the job) are cancelled
    second = await start_server(task_app(hub, 4))
    async with httpx.AsyncClient() as client:
        events = await follow(client, f"http://127.0.0.1:{second.port}{task['events']}")
    assert events[-1].event == "cancelled"
    last = json.loads(events[-1].data)
    assert last["total"] == 100 and last["done"] < 100
    assert last["reason"] == "the server stopped before the task ended"


class FlakyHub(Hub):
    """An in-memory hub that refuses (as a broker outage would) every publish whose task
    state matches ``fail_when``: deterministic, unlike failing "the next n publishes", whose
    victims depend on timing."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_when: Callable[[dict[str, Any]], bool] | None = None

    async def publish(self, channel: str, data: str | bytes, event: str | None = None) -> str:
        check = self.fail_when
        if check is not None and channel.startswith("task/") and check(json.loads(data)):
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
        hub.fail_when = lambda state: state["done"] == 0  # the first event of any task
        refused = await client.post(f"{base}/tasks?steps=2")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert "broker is unavailable" in refused.json()["error"]
        hub.fail_when = None
        task = await start_task(client, base, "steps=2&interval=1")
        assert states(await follow(client, base + task["events"]))[-1] == ("done", 2, 2, 100)


async def test_progress_lost_in_an_outage_is_made_good_by_the_next(start_server) -> None:
    """Progress events that fail to publish mid-task (steps 3 and 4 here) are skipped, not
    fatal: the task goes on and its later events state the whole progress."""
    hub = FlakyHub()
    hub.fail_when = lambda state: state["done"] in (3, 4)
    server = await start_server(task_app(hub, max_jobs=4))
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient() as client:
        task = await start_task(client, base, "steps=6&interval=10")
        events = states(await follow(client, base + task["events"]))
    assert events == [
        ("progress", 1, 6, 16),
        ("progress", 2, 6, 33),
        ("progress", 5, 6, 83),
        ("progress", 6, 6, 100),
        ("done", 6, 6, 100),
    ]
