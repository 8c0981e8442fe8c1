"""The smallest rawstream app: one plain route, one SSE route, one WebSocket route.

Try it:
    rawstream run examples/hello.py:app --port 8000
    curl http://127.0.0.1:8000/
    curl -N http://127.0.0.1:8000/countdown
    python -m websockets ws://127.0.0.1:8000/shout     # type lines; they come back in capitals

Left out: everything a real service adds (auth, persistence, many workers).
"""

from collections.abc import AsyncIterator

import trio

from rawstream import App, Event, Request, Response, WebSocket

app = App()


@app.get("/")
async def index(request: Request) -> Response:
    return Response.text("Hello from rawstream\n")


@app.sse("/countdown")
async def countdown(request: Request) -> AsyncIterator[Event]:
    for n in range(5, 0, -1):
        yield Event(str(n), id=str(n))
        await trio.sleep(1)
    yield Event("liftoff", event="done")


@app.websocket("/shout")
async def shout(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message.upper() if isinstance(message, str) else message)
