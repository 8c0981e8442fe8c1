"""Follow an SSE stream with httpx + httpx-sse, as the tests' clients do, and collect its events.

``await collect_events(client, url, 3)`` connects (GET), reads until 3 events with data have
arrived (the id-only event a hub stream opens with does not count) and returns every event
received, the opening one included; ``count=None`` reads to the end of the stream.  A stream
that ends before ``count`` counted events fails the test, and so does one slower than
``timeout`` seconds.

``await publish(client, base, channel, text)`` publishes through the demo's ``/publish``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import aclosing

import httpx
import trio
from httpx_sse import ServerSentEvent, aconnect_sse

__all__ = ["collect_events", "has_data", "publish"]


def has_data(event: ServerSentEvent) -> bool:
    """Whether ``event`` carries data (not an id-only or retry-only event)."""
    return bool(event.data)


async def collect_events(
    client: httpx.AsyncClient,
    url: str,
    count: int | None = None,
    *,
    counted: Callable[[ServerSentEvent], bool] = has_data,
    until: Callable[[ServerSentEvent], bool] | None = None,
    last_event_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,  # noqa: ASYNC109 (a bound of its own: every caller wants one)
) -> list[ServerSentEvent]:
    """Every event of ``url``'s stream up to the ``count``-th that ``counted`` accepts, or up
    to the first for which ``until`` holds, whichever comes first (with neither: to the end of
    the stream), sending ``Last-Event-ID: last_event_id`` if given.

    Fails if the stream ends before ``count`` counted events, or after ``timeout`` seconds.
    """
    request_headers = dict(headers or {})
    if last_event_id:
        request_headers["Last-Event-ID"] = last_event_id
    events: list[ServerSentEvent] = []
    seen = 0
    with trio.fail_after(timeout):
        async with (
            aconnect_sse(client, "GET", url, headers=request_headers) as source,
            aclosing(source.aiter_sse()) as stream,
        ):
            async for event in stream:
                events.append(event)
                seen += counted(event)
                if seen == count or (until is not None and until(event)):
                    return events
    assert count is None, f"the stream of {url} ended after {seen} of {count} events"
    return events


async def publish(client: httpx.AsyncClient, base: str, channel: str, text: str) -> str:
    """POST ``text`` to the demo's ``/publish?channel=CHANNEL`` at ``base``; return the new
    message's id."""
    response = await client.post(f"{base}/publish?channel={channel}", content=text)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["channel"] == channel
    return str(answer["id"])
