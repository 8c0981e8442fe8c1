"""examples/notifications.py: per-user streams that replay exactly what was missed."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
from conftest import LoadExample
from httpx_sse import ServerSentEvent, aconnect_sse


@pytest.fixture
async def base(start_server, load_example: LoadExample) -> str:
    server = await start_server(load_example("notifications").app)
    return f"http://127.0.0.1:{server.port}"


async def notify(client: httpx.AsyncClient, base: str, user: str, text: str) -> str:
    response = await client.post(f"{base}/notify/{user}", content=text)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def receive(
    client: httpx.AsyncClient,
    url: str,
    count: int,
    last_event_id: str | None = None,
    *,
    send_when_open: str | None = None,
) -> list[ServerSentEvent]:
    """The first ``count`` events with data (the opening id-only event is not counted).
    ``send_when_open``: a notification to send (to the same user) once the stream is open."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    events: list[ServerSentEvent] = []
    with trio.fail_after(10):
        async with aconnect_sse(client, "GET", url, headers=headers) as source:
            async for event in source.aiter_sse():
                if not event.data:  # the opening event: subscribed, position known
                    if send_when_open is not None:
                        base, _, user = url.rpartition("/notifications/")
                        await notify(client, base, user, send_when_open)
                    continue
                events.append(event)
                if len(events) == count:
                    break
    return events


async def test_resume_replays_exactly_the_missed_ones_then_live(base: str) -> None:
    """Seen 1, missed 2 and 3, live 4: the resumed stream gives 2, 3, 4 and nothing else."""
    url = f"{base}/notifications/ann"
    async with httpx.AsyncClient() as client:
        seen = await receive(client, url, 1, send_when_open="one")
        missed = [await notify(client, base, "ann", text) for text in ("two", "three")]
        await notify(client, base, "bob", "not for ann")
        resumed = await receive(client, url, 3, seen[0].id, send_when_open="four")
    assert [(e.event, e.data) for e in seen] == [("notification", "one")]
    assert [e.data for e in resumed] == ["two", "three", "four"]
    assert [e.id for e in resumed[:2]] == missed
    assert {e.event for e in resumed} == {"notification"}


async def test_an_id_older_than_the_history_gets_a_reset_then_what_is_kept(base: str) -> None:
    """101 notifications after the one seen (100 are kept): reset, then the 100 kept."""
    async with httpx.AsyncClient() as client:
        seen = await notify(client, base, "cy", "n0")
        for i in range(1, 102):
            await notify(client, base, "cy", f"n{i}")
        events = await receive(client, f"{base}/notifications/cy", 101, seen)
    assert events[0].event == "reset"
    assert json.loads(events[0].data) == {"channel": "user:cy", "reason": "expired"}
    assert [e.data for e in events[1:]] == [f"n{i}" for i in range(2, 102)]


async def test_an_unknown_id_gets_a_reset(base: str) -> None:
    async with httpx.AsyncClient() as client:
        await notify(client, base, "dee", "kept")
        events = await receive(client, f"{base}/notifications/dee", 2, "nonsense")
    assert events[0].event == "reset"
    assert json.loads(events[0].data)["reason"] in ("malformed", "unknown")
    assert events[1].data == "kept"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/notifications/Ann!", b""),
        ("POST", "/notify/Ann!", b"hi"),
        ("POST", "/notify/ann", b""),
        ("POST", "/notify/ann", b"\xff\xfe"),
        ("POST", "/notify/ann", b"x" * 4097),
    ],
)
async def test_bad_input_is_400(base: str, method: str, path: str, body: bytes) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.request(method, base + path, content=body)
    assert response.status_code == 400
