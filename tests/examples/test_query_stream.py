"""examples/query_stream.py: a sqlite3 query streamed as SSE, closed when the client leaves."""

from __future__ import annotations

import json
from functools import partial
from types import ModuleType

import httpx
import pytest
import trio
from conftest import LoadExample
from httpx_sse import ServerSentEvent, aconnect_sse
from support.sse import collect_events

from rawstream import serve


@pytest.fixture
def query(load_example: LoadExample) -> ModuleType:
    return load_example("query_stream")


async def serve_rows(start_server, query: ModuleType, rows: int) -> str:
    query.ROWS = rows
    server = await start_server(query.app)
    return f"http://127.0.0.1:{server.port}"


async def read_all(
    client: httpx.AsyncClient, url: str, last_event_id: str | None = None
) -> list[ServerSentEvent]:
    """Every event of ``url``'s stream, to its end."""
    return await collect_events(client, url, last_event_id=last_event_id, timeout=20)


def row_ids(events: list[ServerSentEvent]) -> list[int]:
    return [row[0] for e in events if e.event == "rows" for row in json.loads(e.data)]


async def stats(client: httpx.AsyncClient, base: str) -> dict[str, int]:
    return dict((await client.get(f"{base}/stats")).json())


async def test_every_row_arrives_in_order_in_batches(start_server, query: ModuleType) -> None:
    """3000 rows in batches of 250: 12 ``rows`` events (id = last row id), then ``done``."""
    base = await serve_rows(start_server, query, 3000)
    async with httpx.AsyncClient() as client:
        events = await read_all(client, f"{base}/rows?batch=250")
        assert await stats(client, base) == {"open": 0, "finished": 1, "abandoned": 0}
    assert row_ids(events) == list(range(1, 3001))
    assert [e.id for e in events[:-1]] == [str(n) for n in range(250, 3001, 250)]
    assert [e.event for e in events] == ["rows"] * 12 + ["done"]
    assert json.loads(events[0].data)[0] == [1, "sensor-1", 91.9]


async def test_last_event_id_resumes_after_that_row(start_server, query: ModuleType) -> None:
    base = await serve_rows(start_server, query, 3000)
    async with httpx.AsyncClient() as client:
        events = await read_all(client, f"{base}/rows?batch=400", last_event_id="2500")
    assert row_ids(events) == list(range(2501, 3001))


async def test_a_client_that_leaves_mid_stream_closes_the_query(
    start_server, query: ModuleType
) -> None:
    """Read one batch of 100 000 rows and hang up: the handler's finally closes the cursor and
    connection (open goes back to 0, counted as abandoned), and the server serves on."""
    base = await serve_rows(start_server, query, 100_000)
    async with httpx.AsyncClient() as client:
        with trio.fail_after(10):
            async with aconnect_sse(client, "GET", f"{base}/rows?batch=100") as source:
                async for event in source.aiter_sse():
                    assert event.event == "rows"
                    break
                assert (await stats(client, base))["open"] == 1
            while (now := await stats(client, base))["open"]:  # noqa: ASYNC110 (over HTTP)
                await trio.sleep(0.01)
        assert now == {"open": 0, "finished": 0, "abandoned": 1}
        assert row_ids(await read_all(client, f"{base}/rows?batch=5000", "99990")) == list(
            range(99991, 100001)
        )


@pytest.mark.parametrize("query_string", ["batch=0", "batch=many", "batch=5001"])
async def test_a_bad_batch_is_400(start_server, query: ModuleType, query_string: str) -> None:
    base = await serve_rows(start_server, query, 10)
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{base}/rows?{query_string}")
        assert response.status_code == 400
        assert await stats(client, base) == {"open": 0, "finished": 0, "abandoned": 0}


async def test_the_temporary_database_is_deleted_when_the_server_stops(
    query: ModuleType,
) -> None:
    query.ROWS = 10
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(serve, query.app, host="127.0.0.1", port=0))
        path = trio.Path(query.database["path"])
        assert await path.exists()
        server.shutdown()
    assert not await path.parent.exists()
    assert "path" not in query.database
