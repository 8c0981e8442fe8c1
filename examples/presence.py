"""Collaborative presence: who is here, how many, and everyone's live cursor, over WebSocket.

Try it: ``rawstream run examples/presence.py --port 8000`` (or ``python examples/presence.py``),
open http://127.0.0.1:8000/?name=ann and http://127.0.0.1:8000/?name=bob side by side and
move the mouse; close one tab and watch the other's count go down.  Without a browser:
    python -m websockets 'ws://127.0.0.1:8000/presence?room=lobby&name=cli'
    {"x": 0.5, "y": 0.25}                  <- type this: your cursor, in 0..1 coordinates
Messages (JSON): ``{"type":"welcome","you":ID,"count":N,"members":[{"id","name","x","y"}]}``,
then ``join`` ``{"member","count"}``, ``leave`` ``{"id","count"}``, ``cursor`` ``{"id","x","y"}``.

Why it is built this way:
* Presence is state, not history: a newcomer needs a snapshot (the welcome), not a replay of
  every mouse move, so this keeps the room in memory and sends directly, without a hub.
* Leaving is in ``finally``: however the connection ends (close, reset, server shutdown, an
  error), the member is removed and the others are told, once.
* Cursor moves are coalesced: each member's latest position goes out at most once every
  ``CURSOR_INTERVAL``, so a client that sends a thousand moves a second costs the room no more
  than one that sends twenty.  Each message goes out with ``rawstream.broadcast``: encoded
  and framed once for the whole room, queued on every member, never waiting: a member whose
  outbox is full is disconnected (close 1013, the route's ``DISCONNECT`` policy) and, on
  reconnecting, gets a fresh snapshot.

Left out: authentication, and sharing rooms between workers (state here is per process).
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import sys
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from rawstream import (
    App,
    HTTPError,
    Request,
    Response,
    SlowConsumer,
    WebSocket,
    broadcast,
    serve,
)

CURSOR_INTERVAL = 0.05  # seconds: at most 20 cursor updates a second per member
NAME = re.compile(r"[\w .-]{1,32}")

app = App()


@dataclass(eq=False)
class Member:
    id: int
    name: str
    ws: WebSocket
    x: float = -1.0  # -1: no cursor yet
    y: float = -1.0
    moved: bool = False

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "x": self.x, "y": self.y}


rooms: dict[str, dict[int, Member]] = {}
member_ids = itertools.count(1)


def tell_room(room: dict[int, Member], message: dict[str, Any], skip: Member | None = None) -> None:
    """Send ``message`` to the room (but ``skip``): members leaving, or cut off now as too
    slow, are counted in the result's ``closed`` and removed by their own ``finally``."""
    broadcast([m.ws for m in room.values() if m is not skip], json.dumps(message))


@app.websocket("/presence", slow_consumer=SlowConsumer.DISCONNECT)
async def presence(ws: WebSocket) -> None:
    """Join ``?room=`` as ``?name=``; send ``{"x","y"}`` (0..1) to move your cursor."""
    room_name, name = ws.request.query.get("room", "lobby"), ws.request.query.get("name", "")
    if not (NAME.fullmatch(room_name) and NAME.fullmatch(name)):
        raise HTTPError(400, "room and name: 1 to 32 letters, digits, spaces, '.', '-', '_'")
    await ws.accept()
    room = rooms.setdefault(room_name, {})
    me = Member(next(member_ids), name, ws)
    room[me.id] = me
    try:
        # No await between joining and queuing the welcome: nothing reaches us before it.
        members = [m.public() for m in room.values()]
        welcome = {"type": "welcome", "you": me.id, "count": len(room), "members": members}
        ws.send_nowait(json.dumps(welcome))
        tell_room(room, {"type": "join", "member": me.public(), "count": len(room)}, skip=me)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_cursor, room, me)
            async for message in ws:
                try:
                    me.x, me.y = parse_position(message)
                    me.moved = True
                except ValueError as exc:
                    await ws.send(json.dumps({"type": "error", "detail": str(exc)}))
            nursery.cancel_scope.cancel()
    finally:
        del room[me.id]
        if not room:
            rooms.pop(room_name, None)
        tell_room(room, {"type": "leave", "id": me.id, "count": len(room)})


def parse_position(message: str | bytes) -> tuple[float, float]:
    """``{"x": X, "y": Y}`` with both in 0..1, else ``ValueError`` saying what to send."""
    try:
        position = json.loads(message)
        x, y = float(position["x"]), float(position["y"])
    except (ValueError, TypeError, KeyError, ArithmeticError):  # Overflow: {"x": 1000...0}
        x = y = -1.0
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):  # (NaN fails this too)
        raise ValueError('send {"x": X, "y": Y} with X and Y between 0 and 1')
    return x, y


async def send_cursor(room: dict[int, Member], me: Member) -> None:
    """Broadcast ``me``'s latest position, at most once per ``CURSOR_INTERVAL``."""
    while True:
        await trio.sleep(CURSOR_INTERVAL)
        if me.moved:
            me.moved = False
            tell_room(room, {"type": "cursor", "id": me.id, "x": me.x, "y": me.y}, skip=me)


@app.get("/")
async def page(request: Request) -> Response:
    return Response(PAGE, content_type="text/html; charset=utf-8")


PAGE = """<!doctype html><meta charset="utf-8"><title>presence</title>
<style>body{font:14px system-ui;margin:0}#bar{padding:8px;background:#eee;height:20px}
#area{position:fixed;inset:36px 0 0 0}.c{position:absolute;font-size:12px;color:#c00}</style>
<div id="bar"><b id="count">0</b> here: <span id="names"></span></div><div id="area"></div>
<script>
const $ = (id) => document.getElementById(id), area = $("area"), members = new Map();
const q = new URLSearchParams(location.search);
const room = q.get("room") || "lobby", name = q.get("name") || "guest" + (Date.now() % 1000);
let me = null, ws = null, pending = null;
function render(m) {
  $("count").textContent = m.count;
  $("names").textContent = [...members.values()].map((x) => x.name).join(", ");
}
function draw(m) {
  if (!m.el) Object.assign(m.el = area.appendChild(document.createElement("div")),
                           {className: "c", textContent: "\\u25b2 " + m.name});
  Object.assign(m.el.style, {left: m.x * 100 + "%", top: m.y * 100 + "%"});
  m.el.hidden = m.x < 0 || m.id === me;
}
const on = {
  welcome(m) { me = m.you; members.clear(); area.replaceChildren();
               m.members.forEach((x) => { members.set(x.id, x); draw(x); }); render(m); },
  join(m) { members.set(m.member.id, m.member); draw(m.member); render(m); },
  leave(m) { members.get(m.id)?.el?.remove(); members.delete(m.id); render(m); },
  cursor(m) { if (members.has(m.id)) draw(Object.assign(members.get(m.id), m)); },
};
(function connect() {  // after a drop, reconnect: the welcome is a fresh snapshot
  const url = `${location.protocol.replace("http", "ws")}//${location.host}/presence?`;
  ws = new WebSocket(url + new URLSearchParams({room, name}));
  ws.onmessage = (e) => { const m = JSON.parse(e.data); on[m.type]?.(m); };
  ws.onclose = () => setTimeout(connect, 1000);
})();
area.onmousemove = (e) => { const r = area.getBoundingClientRect();
  pending = {x: (e.clientX - r.left) / r.width, y: (e.clientY - r.top) / r.height}; };
setInterval(() => {  // the latest position, 20 times a second at most
  if (pending && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(pending));
  pending = null;
}, 50);
</script>
"""

if __name__ == "__main__":  # python examples/presence.py [PORT]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    trio.run(partial(serve, app, port=port, handle_signals=True))
