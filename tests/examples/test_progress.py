"""examples/progress.py: a task started by POST reports rising progress over SSE to done."""

from __future__ import annotations

import json
from functools import partial
from types import ModuleType

import httpx
import pytest
import trio
from conftest import LoadExample
from httpx_sse import ServerSentEvent
from support.sse import collect_events

from rawstream import serve


@pytest.fixture
def progress(load_example: LoadExample) -> ModuleType:
    module = load_example("progress")
    module.STEP_SECONDS = 0.002
    return module


@pytest.fixture
async def base(start_server, progress: ModuleType) -> str:
    server = await start_server(progress.app)
    return f"http://127.0.0.1:{server.port}"


async def start_task(client: httpx.AsyncClient, base: str, steps: int) -> str:
    response = await client.post(f"{base}/tasks?steps={steps}")
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["events"] == f"/tasks/{answer['task']}/events"
    return f"{base}{answer['events']}"


async def follow(
    client: httpx.AsyncClient, url: str, last_event_id: str | None = None, until: int = 101
) -> list[ServerSentEvent]:
    """The task's events until ``done`` (or a progress of ``until`` percent or more)."""

    def reached(event: ServerSentEvent) -> bool:
        return event.event == "progress" and json.loads(event.data)["percent"] >= until

    return await collect_events(client, url, until=reached, last_event_id=last_event_id)


def percents(events: list[ServerSentEvent]) -> list[int]:
    return [json.loads(e.data)["percent"] for e in events if e.event == "progress"]


async def test_progress_rises_to_100_then_done(base: str) -> None:
    """Percents strictly increase, reach 100, and one done event ends the stream."""
    async with httpx.AsyncClient() as client:
        events = await follow(client, await start_task(client, base, 50))
    assert percents(events) == list(range(2, 101, 2))
    assert [e.event for e in events][-2:] == ["progress", "done"]
    assert json.loads(events[-1].data) == {"result": "50 steps"}


async def test_many_steps_give_at_most_100_events(base: str) -> None:
    """A task of 250 steps sends an event only when the percent goes up."""
    async with httpx.AsyncClient() as client:
        events = await follow(client, await start_task(client, base, 250))
    assert percents(events) == list(range(1, 101))


async def test_a_reconnecting_client_resumes_where_it_left(base: str) -> None:
    """Drop the stream at 30 %, come back with Last-Event-ID: nothing lost, nothing twice;
    and once done, the done id gets 204 (EventSource stops reconnecting)."""
    async with httpx.AsyncClient() as client:
        url = await start_task(client, base, 20)
        first = await follow(client, url, until=30)
        rest = await follow(client, url, last_event_id=first[-1].id)
        again = await client.get(url, headers={"Last-Event-ID": rest[-1].id})
    assert percents(first) == list(range(5, 31, 5))
    assert percents(rest) == list(range(35, 101, 5))
    assert rest[-1].event == "done"
    assert again.status_code == 204


async def test_a_late_client_gets_the_whole_task(base: str, progress: ModuleType) -> None:
    """A client that connects after the task finished still sees it all, from the start."""
    async with httpx.AsyncClient() as client:
        url = await start_task(client, base, 10)
        await follow(client, url)  # the task is done once this returns
        late = await follow(client, url)
    assert percents(late) == list(range(10, 101, 10))
    assert late[-1].event == "done"


async def test_bad_requests_get_typed_answers(base: str, progress: ModuleType) -> None:
    """400 for bad steps, 404 for an unknown task, 503 past MAX_RUNNING tasks."""
    progress.MAX_RUNNING = 1
    progress.STEP_SECONDS = 60  # the one running task stays running
    async with httpx.AsyncClient() as client:
        for steps in ("ten", "0", "100001"):
            assert (await client.post(f"{base}/tasks?steps={steps}")).status_code == 400
        assert (await client.get(f"{base}/tasks/nope/events")).status_code == 404
        await start_task(client, base, 2)
        busy = await client.post(f"{base}/tasks?steps=2")
    assert busy.status_code == 503
    # The running task is due in 120 s: that (minus the test's few moments) is the advice.
    assert 100 <= int(busy.headers["retry-after"]) <= 120


async def test_a_task_may_last_five_minutes_at_most(base: str, progress: ModuleType) -> None:
    """steps * STEP_SECONDS over MAX_TASK_SECONDS: 400 saying the most steps; at it: 202."""
    progress.STEP_SECONDS = 0.1
    async with httpx.AsyncClient() as client:
        too_long = await client.post(f"{base}/tasks?steps=3001")
        assert too_long.status_code == 400
        assert "at most 300 s: 3000 steps" in too_long.text
        await start_task(client, base, 3000)


async def test_the_runner_resets_and_frees_its_slots_on_shutdown(progress: ModuleType) -> None:
    """When the server stops mid-task, the runner forgets its nursery and frees every slot:
    no start could go to a closed nursery, and none is held by a task that no longer runs."""
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(serve, progress.app, host="127.0.0.1", port=0))
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient() as client:
            url = await start_task(client, base, 20_000)  # 40 s at the test's pace
            first = await follow(client, url, until=0)  # its first progress event
        assert percents(first) == [1]  # the stream starts after the (cursor) queued event
        assert progress.runner.nursery is not None and len(progress.runner.ends) == 1
        server.shutdown()
    assert progress.runner.nursery is None
    assert progress.runner.ends == {}
