"""Log records that carry the connection they are about, as text or as one JSON object a line.

Every task of a connection runs with :data:`current_connection` set (trio copies context
variables into the tasks a task starts), so any log line written on its behalf, by the server
or by a handler, can name the connection and the client without passing them around.
:class:`ConnectionFilter` copies them onto each record as ``conn`` and ``client``;
:class:`JSONFormatter` writes records as JSON objects, one a line, for log collectors.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ConnectionFilter",
    "ConnectionInfo",
    "JSONFormatter",
    "WORKER_ENV",
    "configure_logging",
    "current_connection",
]


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """What a log line says about the connection it was written for."""

    id: int
    client: str  # "host:port"


#: The connection the running task serves (None outside any connection).
current_connection: ContextVar[ConnectionInfo | None] = ContextVar(
    "rawstream_connection", default=None
)

#: The environment variable holding a worker's number under ``rawstream --workers N`` (1 to N;
#: a restart keeps its number; see :mod:`rawstream.server.workers`, which sets it), for log
#: lines and for work only one worker of a node should do (the demo's ticker).
WORKER_ENV = "RAWSTREAM_WORKER"
_WORKER = os.environ.get(WORKER_ENV)

#: Attributes every record has; anything else on a record came from ``extra=`` and is kept.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "conn",
    "client",
    "where",
}


class ConnectionFilter(logging.Filter):
    """Adds ``conn`` (an id, or None) and ``client`` to every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        info = current_connection.get()
        if not hasattr(record, "conn"):  # (an explicit extra= wins)
            record.conn = info.id if info else None
            record.client = info.client if info else None
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, pid (and worker number under
    ``--workers``), connection and client when the line is about one, and any extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if _WORKER is not None:
            entry["worker"] = _WORKER
        conn = getattr(record, "conn", None)
        if conn is not None:
            entry["conn"] = conn
            entry["client"] = getattr(record, "client", None)
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "info", fmt: Literal["text", "json"] = "text") -> None:
    """Log to stderr at ``level``, as text (``[conn=ID HOST:PORT]`` before the message when a
    line is about a connection) or as JSON lines."""
    handler = logging.StreamHandler()
    handler.addFilter(ConnectionFilter())
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(
            _TextFormatter("%(asctime)s %(name)s %(levelname)s %(where)s%(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class _TextFormatter(logging.Formatter):
    """``TIME LOGGER LEVEL [conn=ID CLIENT] MESSAGE``: the bracket only on connection lines."""

    def format(self, record: logging.LogRecord) -> str:
        conn = getattr(record, "conn", None)
        record.where = "" if conn is None else f"[conn={conn} {getattr(record, 'client', None)}] "
        return super().format(record)
