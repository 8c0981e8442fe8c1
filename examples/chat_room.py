"""Chat rooms over WebSocket: history, resume after a drop, a member count.

Try it (two terminals, each a member of the room "lobby"):
    rawstream run examples/chat_room.py --port 8000        # or: python examples/chat_room.py
    python -m websockets 'ws://127.0.0.1:8000/chat?room=lobby&name=ann'
    python -m websockets 'ws://127.0.0.1:8000/chat?room=lobby&name=bob'
Type a line in one; both receive it.  Every message carries an ``id``: quit bob, let ann say
a few things, then reconnect bob with what he saw last and he gets what he missed:
    python -m websockets 'ws://127.0.0.1:8000/chat?room=lobby&name=bob&last_event_id=ID'

Why it is built this way: a room is a hub channel (``rawstream.hub.Rooms``), so the room gets
the channel's bounded history and replay, and a message is encoded and framed once for every
member.  A member whose connection cannot keep up is not waited for: it falls back to reading
the history at its own pace (see the README's "Channels").  Joining and leaving (the member
count every member sees) happen in ``rooms.join``'s ``async with``, so a member who drops is
always counted out, however the connection ends.

What members receive (JSON text): ``{"type":"welcome","room","members","id"}`` once, then
``{"type":"message","id","event","data"}`` where ``data`` is ``{"user","text"}`` for chat
and ``{"members": N}`` for ``event: "presence"``; ``{"type":"reset"}`` if the id is too old.

Left out: authentication (anyone may take any name), moderation, persistence beyond the
in-memory history (``rawstream run ... --broker redis://`` keeps it in Redis and shares rooms
between workers).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from functools import partial

import trio

from rawstream import App, HTTPError, WebSocket, serve
from rawstream.hub import HistoryLimits, Rooms, open_broker

#: The longest chat line accepted; longer ones get an error message, not a broadcast.
MAX_TEXT = 2000
NAME = re.compile(r"[\w .-]{1,32}")

app = App()
hub = open_broker(history=HistoryLimits(max_messages=500))  # per room: what a returner can get
app.service(hub.run)
rooms = Rooms(hub)


@app.websocket("/chat")
async def chat(ws: WebSocket) -> None:
    """Join ``?room=`` as ``?name=``; every text message is broadcast to the room."""
    room = ws.request.query.get("room", "lobby")
    name = ws.request.query.get("name", "anonymous")
    if not NAME.fullmatch(name):
        raise HTTPError(400, "name: 1 to 32 letters, digits, spaces, '.', '-' or '_'")
    try:
        rooms.channel(room)  # validates the room name before the handshake is accepted
    except ValueError as exc:
        raise HTTPError(400, str(exc)) from None
    async with rooms.join(ws, room, ws.request.last_event_id) as member:
        async for text in ws:
            if not isinstance(text, str) or len(text) > MAX_TEXT:
                error = f"send text messages of at most {MAX_TEXT} characters"
                await ws.send(json.dumps({"type": "error", "detail": error}))
                continue
            await member.broadcast(json.dumps({"user": name, "text": text}))


if __name__ == "__main__":  # python examples/chat_room.py [PORT]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    trio.run(partial(serve, app, port=port, handle_signals=True))
