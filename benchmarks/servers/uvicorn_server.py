"""The Starlette app (starlette_app.py) under uvicorn[standard], the usual production setup:
uvloop event loop, httptools HTTP parser, the websockets (sans-I/O) WebSocket protocol that
``ws="auto"`` picks, no permessage-deflate, no access log, backlog 2048.

Stops on SIGTERM/SIGINT by uvicorn's own signal handling (sse-starlette, on import, hooks
uvicorn's exit handler so open SSE streams end at shutdown).
"""

from __future__ import annotations

import uvicorn
from common import parse_args
from starlette_app import app


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        log_level="warning",
        access_log=False,
        backlog=2048,
    )


if __name__ == "__main__":
    main()
