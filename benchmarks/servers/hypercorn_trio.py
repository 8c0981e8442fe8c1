"""The Starlette app (starlette_app.py) under Hypercorn's trio worker, served the documented
programmatic way: ``trio.run(hypercorn.trio.serve, app, config, shutdown_trigger=...)``.

Config: bind 127.0.0.1:PORT, no access log, log level WARNING, backlog 2048.  Hypercorn
always offers permessage-deflate (wsproto) and has no setting to turn it off; it is only
used if the client asks for it, and the load generator's clients do not.
SIGTERM/SIGINT trigger Hypercorn's graceful shutdown (open streams get ``graceful_timeout``).
"""

from __future__ import annotations

import signal
from functools import partial

import trio
from common import parse_args
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette_app import app


async def shutdown_trigger() -> None:
    """Return on the first SIGTERM or SIGINT."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            return


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    config = Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    config.accesslog = None
    config.loglevel = "WARNING"
    config.backlog = 2048
    trio.run(partial(serve, app, config, shutdown_trigger=shutdown_trigger))


if __name__ == "__main__":
    main()
