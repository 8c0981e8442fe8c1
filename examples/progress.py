"""Progress of a long task: start it with POST, follow it over SSE, resume after a drop.

Try it:
    rawstream run examples/progress.py --port 8000         # or: python examples/progress.py
    curl -X POST 'http://127.0.0.1:8000/tasks?steps=40'    # {"task":"ID","events":...}
    curl -N http://127.0.0.1:8000/tasks/ID/events          # progress events, then done
Stop curl half way and start it again with the last id it printed
(``curl -N -H 'Last-Event-ID: EID' ...``): it carries on from there.  Once the task is done,
a reconnect with the ``done`` event's id gets 204, which tells an ``EventSource`` to stop.
In a browser: ``new EventSource("/tasks/ID/events")`` and listen for ``progress``/``done``.

Why it is built this way:
* The task runs in a nursery owned by an app service, not in the request: it outlives the
  POST that started it (and any client watching it) and is cancelled when the server stops.
  A task lasts at most ``MAX_TASK_SECONDS`` (steps times ``STEP_SECONDS``; longer is a 400)
  and at most ``MAX_RUNNING`` run at once; beyond that the POST answers 503 with
  ``Retry-After``: the seconds until the running task due first should be done.
* Each task publishes to its own hub channel, so its progress has a history: a client that
  connects late, or reconnects with ``Last-Event-ID``, replays what it missed and goes live;
  a client with no id starts at the task's first event.
* Events: ``queued`` ``{"percent": 0}`` first, published before the POST answers; its id
  is where a client without ``Last-Event-ID`` starts, so streams begin with the event after
  it.  Then ``progress`` ``{"percent", "step", "steps"}`` each time the percent goes up (at
  most 100 however many steps, so they fit the channel's history), then one ``done``
  ``{"result"}``, after which the stream ends.

Left out: cancelling a task (``DELETE``), persistence across restarts, real work (run
blocking work with ``await trio.to_thread.run_sync(fn)`` in place of the sleep), and several
workers: the task registry (``Runner.tasks``) is per process, so this example is
single-process by design.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import sys
from dataclasses import dataclass
from functools import partial

import trio

from rawstream import App, HTTPError, Request, Response, SSEStream, serve
from rawstream.hub import BrokerUnavailable, Message, open_broker

#: Seconds each step of a task takes (tests shorten it).
STEP_SECONDS = 0.1
MAX_STEPS = 100_000
MAX_TASK_SECONDS = 300  # five minutes: a few long tasks must not hold every slot for hours
MAX_RUNNING = 8
MAX_KEPT = 1000  # tasks remembered (oldest forgotten first), fewer than the hub's channels

app = App()
hub = open_broker()
app.service(hub.run)


@dataclass
class Task:
    first_id: str  # where a client without Last-Event-ID starts
    done_id: str | None = None


class Busy(Exception):
    """Every slot is taken; try again in ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"{MAX_RUNNING} tasks running; try again in {retry_after} s")
        self.retry_after = retry_after


class Runner:
    """Runs tasks in its own nursery (an app service) and remembers where each one begins."""

    def __init__(self) -> None:
        self.nursery: trio.Nursery | None = None
        self.tasks: dict[str, Task] = {}
        self.ends: dict[str, float] = {}  # running tasks: when each should be done

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                task_status.started()
                await trio.sleep_forever()  # cancelled on shutdown, and the tasks with it
        finally:
            self.nursery = None  # no start after this: 503, not a task in a closed nursery

    async def start(self, steps: int) -> str:
        if self.nursery is None:
            raise HTTPError(503, "the task runner is not running")
        if len(self.ends) >= MAX_RUNNING:
            soonest = min(self.ends.values()) - trio.current_time()
            raise Busy(max(1, math.ceil(soonest)))
        task_id = secrets.token_hex(8)
        # The slot is taken before any await (concurrent POSTs cannot overshoot the limit)
        # and given back by work()'s finally once it runs; if it never starts (the broker is
        # down, or the nursery closed during shutdown), it is given back here.
        self.ends[task_id] = trio.current_time() + steps * STEP_SECONDS
        try:
            await self.nursery.start(self.work, task_id, steps)
        except BaseException:
            self.ends.pop(task_id, None)
            raise
        return task_id

    async def work(
        self,
        task_id: str,
        steps: int,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        channel, percent, started = f"task:{task_id}", 0, False
        try:
            # Before started(): a failure here is the POST's (503), not a task left behind.
            first = await hub.publish(channel, json.dumps({"percent": 0}), "queued")
            self.tasks[task_id] = Task(first)
            while len(self.tasks) > MAX_KEPT:
                del self.tasks[next(iter(self.tasks))]  # dicts keep insertion order: the oldest
            task_status.started()
            started = True
            for step in range(1, steps + 1):
                await trio.sleep(STEP_SECONDS)  # the real work goes here
                if step * 100 // steps > percent:  # at most 100 events: they fit the history
                    percent = step * 100 // steps
                    progress = {"percent": percent, "step": step, "steps": steps}
                    await hub.publish(channel, json.dumps(progress), "progress")
            done_id = await hub.publish(channel, json.dumps({"result": f"{steps} steps"}), "done")
            if task_id in self.tasks:
                self.tasks[task_id].done_id = done_id
        except Exception:  # one failed task (say, the broker is down) must not stop the others
            if not started:
                raise  # the POST's error (a 503 for the broker), not the nursery's
            logging.getLogger(__name__).exception("task %s failed", task_id)
        finally:
            self.ends.pop(task_id, None)


runner = Runner()
app.service(runner.run)


@app.post("/tasks")
async def start_task(request: Request) -> Response:
    """Start a task of ``?steps=N`` steps; answer 202 with where to follow it."""
    try:
        steps = int(request.query.get("steps", "20"))
    except ValueError:
        raise HTTPError(400, "steps must be an integer") from None
    if not 1 <= steps <= MAX_STEPS:
        raise HTTPError(400, f"steps must be between 1 and {MAX_STEPS}")
    if steps * STEP_SECONDS > MAX_TASK_SECONDS:
        most = int(MAX_TASK_SECONDS / STEP_SECONDS)
        raise HTTPError(400, f"a task may last at most {MAX_TASK_SECONDS} s: {most} steps")
    try:
        task_id = await runner.start(steps)
    except Busy as exc:
        headers = [("retry-after", str(exc.retry_after))]
        return Response(str(exc), status=503, headers=headers, content_type="text/plain")
    except BrokerUnavailable as exc:
        raise HTTPError(503, f"the broker is unavailable: {exc}") from None
    return Response.json({"task": task_id, "events": f"/tasks/{task_id}/events"}, status=202)


@app.sse("/tasks/{task_id}/events")
async def task_events(request: Request, stream: SSEStream) -> None:
    """The task's events from ``Last-Event-ID`` (or its start) until ``done``."""
    task = runner.tasks.get(request.path_params["task_id"])
    if task is None:
        raise HTTPError(404, "no such task (or forgotten)")
    if task.done_id is not None and stream.last_event_id == task.done_id:
        raise HTTPError(204)  # seen it all: EventSource stops reconnecting
    channel = f"task:{request.path_params['task_id']}"
    async with hub.subscribe(channel, stream.last_event_id or task.first_id) as subscription:
        async for item in subscription:  # Message, or Reset if the id is unknown
            await stream.send_encoded(item.sse)
            if isinstance(item, Message) and item.event == "done":
                return


if __name__ == "__main__":  # python examples/progress.py [PORT]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    trio.run(partial(serve, app, port=port, handle_signals=True))
