"""Long tasks that report their progress over SSE: ``POST /tasks?steps=N[&interval=MS]``.

A task is a background job (here a pretend one: ``steps`` steps of ``interval`` milliseconds)
that publishes its progress to a hub channel of its own, ``task/ID``.  The client follows it
with any SSE client on ``/events?channel=task/ID`` (the demo's :func:`~rawstream.hub.sse_channels`
route), so progress gets the hub's semantics for free: a browser whose connection drops
reconnects with ``Last-Event-ID`` and replays what it missed, and with a Redis hub any worker
can serve the stream.

The events, each an SSE event of that channel:

* ``progress``: ``{"done": k, "total": N, "percent": p}`` (``p`` an integer, 100 only at the
  end), once when the task starts (``done`` 0) and after each step that raises the whole
  percent (so at most 101 of them, however many steps: a task's channel holds at most 102
  events, whatever ``steps`` is);
* ``done``: ``{"done": N, "total": N, "percent": 100}``, last;
* ``cancelled``: ``{"done": k, "total": N, "percent": p, "reason": TEXT}``, last, instead of
  ``done``, when the server stops before the task ends (the job dies with the process).  It
  is published in a shielded scope bounded by :data:`CANCEL_PUBLISH_SECONDS`, through a
  hub that is still running (services stop last started first, and the hub was started
  before this one).  A broker that is down may still lose it, so a follower also treats a
  ``reset`` (the in-memory hub's history went with the process) or a long silence as the
  end.

Progress is stated, not incremented, so a progress event that fails to publish (the broker
is down for a moment) is made good by the next one.

**No lost start.**  The answer to the ``POST`` names the task's first event
(``last_event_id``) and its ``events`` URL resumes from it (``&last_event_id=ID``): a client
that subscribes after the task has already made progress replays every step, instead of
starting from whatever is published after it connects.  The job publishes that first event
before the ``POST`` answers (it is started with ``nursery.start``), so a broker that is down
gives a ``503`` instead of a task nobody can follow.

**Lifetimes.**  Jobs run in the nursery of a service (:meth:`~rawstream.app.App.service`),
not in the request's: the ``POST`` answers at once and the job outlives it; at shutdown the
service, and with it every job, is cancelled after the server drained.  A task lasts at most
:data:`MAX_TASK_MS` (``steps`` times ``interval``; longer is a ``400``), and at most
``max_jobs`` run at once; beyond, ``POST /tasks`` answers ``503`` with ``Retry-After`` set to
the seconds until the running job expected to end first has ended.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
from urllib.parse import urlencode

import trio

from rawstream.app import App
from rawstream.hub import Broker, BrokerUnavailable
from rawstream.hub.message import check_channel
from rawstream.request import HTTPError, Request
from rawstream.response import Response

__all__ = [
    "DEFAULT_INTERVAL_MS",
    "DEFAULT_STEPS",
    "MAX_INTERVAL_MS",
    "MAX_JOBS",
    "MAX_STEPS",
    "MAX_TASK_MS",
    "MIN_INTERVAL_MS",
    "add_tasks",
]

log = logging.getLogger("rawstream.demo")

#: Steps of a task: the default and the most (the least is 1).
DEFAULT_STEPS = 10
MAX_STEPS = 1000
#: A step's duration: the default, and the bounds of ``interval`` (milliseconds).
DEFAULT_INTERVAL_MS = 200
MIN_INTERVAL_MS = 1
MAX_INTERVAL_MS = 10_000
#: The longest task, ``steps * interval`` (milliseconds): five minutes.  Without it, a few
#: requests could hold every slot for hours (1000 steps of 10 s).
MAX_TASK_MS = 5 * 60 * 1000
#: Tasks running at once; beyond, 503.
MAX_JOBS = 64
#: Seconds the job may spend publishing its ``cancelled`` event when the server stops.
CANCEL_PUBLISH_SECONDS = 1.0


def task_channel(task_id: str) -> str:
    """The hub channel a task's progress is published to."""
    return check_channel(f"task/{task_id}")


class Unavailable(Exception):
    """No task can start now (the answer is ``503``; the message says why, ``retry_after``
    in how many seconds to try again)."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Jobs:
    """The service that owns the jobs' nursery, and the running jobs' expected ends."""

    def __init__(self, hub: Broker, max_jobs: int) -> None:
        self.hub = hub
        self.max_jobs = max_jobs
        #: task id -> when (trio.current_time()) the job should be done: the count of
        #: running jobs, and what ``Retry-After`` is computed from.
        self._ends: dict[str, float] = {}
        self._nursery: trio.Nursery | None = None

    @property
    def running(self) -> int:
        """Jobs running (or starting) now."""
        return len(self._ends)

    def retry_after(self) -> int:
        """Whole seconds until the running job expected to end first has ended (at least 1)."""
        if not self._ends:
            return 1
        return max(1, math.ceil(min(self._ends.values()) - trio.current_time()))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Hold the nursery jobs run in until the server stops (then they are cancelled)."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None

    async def start(self, steps: int, interval: float) -> tuple[str, str]:
        """Start a job; return its id and the id of its first event.

        Raises:
            Unavailable: ``max_jobs`` are running, the service is not running, or the broker
                cannot take the first event.
        """
        if self._nursery is None:
            raise Unavailable("the task service is not running")
        if self.running >= self.max_jobs:
            raise Unavailable(
                f"{self.max_jobs} tasks are running; try again later", self.retry_after()
            )
        task_id = secrets.token_hex(8)
        # Counted before any await, so concurrent POSTs respect the cap.
        self._ends[task_id] = trio.current_time() + steps * interval
        try:
            first_id: str = await self._nursery.start(self._job, task_id, steps, interval)
        except BaseException as exc:
            self._ends.pop(task_id, None)  # the job never started, so its finally did not run
            if isinstance(exc, BrokerUnavailable):
                raise Unavailable(f"the message broker is unavailable: {exc}") from None
            raise
        return task_id, first_id

    async def _job(
        self,
        task_id: str,
        steps: int,
        interval: float,
        *,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Publish 0 %, report that event's id, then a step per ``interval`` (published when
        the whole percent goes up), then done; ``cancelled`` if the server stops first."""
        channel = task_channel(task_id)
        # Before started(): an error here reaches the POST (a 503), not the nursery.
        task_status.started(await self.hub.publish(channel, _state(0, steps), "progress"))
        done = percent = 0
        try:
            while done < steps:
                await trio.sleep(interval)  # the work; a real task would do it here
                done += 1
                if done * 100 // steps > percent:  # at most 100 of these, whatever steps is
                    percent = done * 100 // steps
                    await self._publish(channel, _state(done, steps), "progress")
            await self._publish(channel, _state(steps, steps), "done")
        except trio.Cancelled:
            # The server is stopping (jobs die with the process): say so, so a follower does
            # not wait forever.  Shielded, or the publish would be cancelled too; bounded,
            # since the broker may be stopping as well.
            with trio.move_on_after(CANCEL_PUBLISH_SECONDS) as scope:
                scope.shield = True
                reason = "the server stopped before the task ended"
                await self._publish(channel, _state(done, steps, reason), "cancelled")
            raise
        finally:
            del self._ends[task_id]

    async def _publish(self, channel: str, data: str, event: str) -> None:
        """Publish, and carry on if the broker is down: the next state supersedes this one."""
        try:
            await self.hub.publish(channel, data, event)
        except BrokerUnavailable as exc:
            log.info("task %s: %s not published: %s", channel, event, exc)


def _state(done: int, total: int, reason: str | None = None) -> str:
    """A progress event's data (a ``cancelled`` event's with the ``reason``)."""
    state: dict[str, int | str] = {"done": done, "total": total, "percent": done * 100 // total}
    if reason is not None:
        state["reason"] = reason
    return json.dumps(state, separators=(",", ":"))


def _bounded_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    """Query parameter ``name`` as an integer in ``[low, high]`` (400 otherwise)."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPError(400, f"{name} must be an integer") from None
    if not low <= value <= high:
        raise HTTPError(400, f"{name} must be between {low} and {high}")
    return value


def add_tasks(app: App, hub: Broker, *, max_jobs: int = MAX_JOBS) -> None:
    """Serve ``POST /tasks?steps=N[&interval=MS]`` on ``app``; progress goes to hub channels.

    The answer (``202``) is ``{"id": ID, "channel": "task/ID", "last_event_id": FIRST,
    "events": "/events?channel=task/ID&last_event_id=FIRST"}``; ``steps`` is 1 to
    :data:`MAX_STEPS` (default :data:`DEFAULT_STEPS`), ``interval`` :data:`MIN_INTERVAL_MS` to
    :data:`MAX_INTERVAL_MS` (default :data:`DEFAULT_INTERVAL_MS`), and ``steps * interval``
    at most :data:`MAX_TASK_MS`.  ``400`` for a bad parameter, ``503`` when ``max_jobs`` tasks
    run already (``Retry-After``: the seconds until the first of them should end) or the
    broker is down (``Retry-After: 1``).  The events URL assumes the app serves the hub's
    channels at ``/events``.
    """
    jobs = _Jobs(hub, max_jobs)
    app.service(jobs.run)

    @app.post("/tasks")
    async def start_task(request: Request) -> Response:
        """Start a task; answer where to follow its progress."""
        steps = _bounded_int(request, "steps", DEFAULT_STEPS, 1, MAX_STEPS)
        interval_ms = _bounded_int(
            request, "interval", DEFAULT_INTERVAL_MS, MIN_INTERVAL_MS, MAX_INTERVAL_MS
        )
        if steps * interval_ms > MAX_TASK_MS:
            raise HTTPError(
                400,
                f"a task may last at most {MAX_TASK_MS} ms (5 minutes): steps * interval is "
                f"{steps * interval_ms}",
            )
        try:
            task_id, first_id = await jobs.start(steps, interval_ms / 1000)
        except Unavailable as exc:
            headers = [("retry-after", str(exc.retry_after))]
            return Response.json({"error": str(exc)}, status=503, headers=headers)
        channel = task_channel(task_id)
        query = urlencode({"channel": channel, "last_event_id": first_id}, safe="/")
        return Response.json(
            {
                "id": task_id,
                "channel": channel,
                "last_event_id": first_id,
                "events": f"/events?{query}",
            },
            status=202,
        )
