"""Reading JSON messages from a WebSocket with trio-websocket, as the chat and presence tests do."""

from __future__ import annotations

import json
from typing import Any

import trio
from trio_websocket import WebSocketConnection

__all__ = ["next_json"]


async def next_json(ws: WebSocketConnection, **match: Any) -> dict[str, Any]:
    """The next JSON message whose fields include ``match`` (others, e.g. presence updates,
    skipped); fails after 5 seconds."""
    with trio.fail_after(5):
        while True:
            message: dict[str, Any] = json.loads(await ws.get_message())
            if all(message.get(key) == value for key, value in match.items()):
                return message
