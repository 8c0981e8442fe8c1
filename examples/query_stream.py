"""A large SQL query streamed as SSE in batches, resumable, cleaned up when the client leaves.

Try it:
    rawstream run examples/query_stream.py --port 8000     # or: python examples/query_stream.py
    curl -N 'http://127.0.0.1:8000/rows?batch=1000'        # 100 "rows" events, then "done"
    curl -N -H 'Last-Event-ID: 95000' http://127.0.0.1:8000/rows    # the rows after id 95000
    curl http://127.0.0.1:8000/stats                       # queries open, finished, abandoned
Press Ctrl-C in the first curl half way, then look at /stats: the query was closed.

Why it is built this way:
* sqlite3 blocks, so every call into it runs in a worker thread (``trio.to_thread.run_sync``)
  and the event loop keeps serving everyone else.  Rows come ``fetchmany(batch)`` at a time:
  memory holds one batch, never the whole result, and the server's bounded outbox makes the
  query wait for a slow client (backpressure) instead of buffering for it.
* A connection belongs to its creating thread by default, and trio may run each call in a
  different worker thread, so it is opened with ``check_same_thread=False``.  That is safe
  here because one request's calls never overlap: each ``to_thread.run_sync`` is awaited, and
  a cancelled one still waits for its thread to finish (trio does not abandon it).
* The handler is an async generator.  When the client goes away the server cancels it and
  closes it with ``aclose()``: its ``finally`` closes the cursor and the connection (no
  thread is using them by then), and ``/stats`` counts the query as abandoned.
* Event ids are the last row id sent, so a client that reconnects with ``Last-Event-ID``
  resumes after it (``WHERE id > ?``: keyset pagination, no OFFSET rescans).
* The database is made at startup by an app service, in a temporary directory that is
  deleted when the server stops.

Left out: a connection pool, and a query that takes long before its first row (interrupt it
with ``connection.interrupt()`` from the event loop when the handler is cancelled).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import trio

from rawstream import App, Event, HTTPError, Request, Response, serve

ROWS = 100_000  # made at startup (tests make fewer)
MAX_BATCH = 5000

app = App()
database: dict[str, Path] = {}  # "path": the database file, while the server runs
stats: Counter[str] = Counter()  # queries "open", "finished", "abandoned"


def make_database(path: Path, rows: int) -> None:
    db = sqlite3.connect(path)
    try:
        with db:  # one transaction
            db.execute("CREATE TABLE readings (id INTEGER PRIMARY KEY, sensor TEXT, value REAL)")
            db.executemany(
                "INSERT INTO readings VALUES (?, ?, ?)",
                ((i, f"sensor-{i % 17}", (i * 7919 % 1000) / 10) for i in range(1, rows + 1)),
            )
    finally:
        db.close()


@app.service
async def temporary_database(
    *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Make the database in a temporary directory, delete it all when the server stops."""
    with tempfile.TemporaryDirectory(prefix="rawstream-query-") as directory:
        path = Path(directory) / "readings.db"
        await trio.to_thread.run_sync(make_database, path, ROWS)
        database["path"] = path
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            del database["path"]


@app.sse("/rows")
async def rows(request: Request) -> AsyncIterator[Event]:
    """``rows`` events of ``?batch=`` rows (``[[id, sensor, value], ...]``), then ``done``."""
    try:
        batch = int(request.query.get("batch", "500"))
        after = int(request.last_event_id or 0)
    except ValueError:
        raise HTTPError(400, "batch and Last-Event-ID must be integers") from None
    if not 1 <= batch <= MAX_BATCH:
        raise HTTPError(400, f"batch must be between 1 and {MAX_BATCH}")
    connect = partial(sqlite3.connect, database["path"], check_same_thread=False)
    connection = await trio.to_thread.run_sync(connect)
    cursor: sqlite3.Cursor | None = None
    stats["open"] += 1
    finished = False
    try:
        cursor = await trio.to_thread.run_sync(
            connection.execute, "SELECT * FROM readings WHERE id > ? ORDER BY id", (after,)
        )
        while chunk := await trio.to_thread.run_sync(cursor.fetchmany, batch):
            yield Event(json.dumps(chunk), event="rows", id=str(chunk[-1][0]))
        yield Event("{}", event="done")
        finished = True
    finally:  # on completion, on error, and when the client left (the server's aclose())
        # Synchronous on purpose: both are quick, no thread uses them any more, and an await
        # here would be cancelled at once when the client has gone.
        if cursor is not None:
            cursor.close()
        connection.close()
        stats["open"] -= 1
        stats["finished" if finished else "abandoned"] += 1


@app.get("/stats")
async def query_stats(request: Request) -> Response:
    return Response.json({key: stats[key] for key in ("open", "finished", "abandoned")})


if __name__ == "__main__":  # python examples/query_stream.py [PORT]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    trio.run(partial(serve, app, port=port, handle_signals=True))
