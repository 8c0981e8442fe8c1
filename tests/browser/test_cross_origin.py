"""Cross-origin pages in a real browser (Debian's chromium through Playwright).

Two rawstream servers run on loopback in a thread of this test: the *page* server on one
port serves a blank page (origin ``http://127.0.0.1:P``), the *API* server on another port
(``http://127.0.0.1:Q``, another origin) has the WebSocket and SSE routes.  The page's script
then opens ``new WebSocket(...)`` and ``new EventSource(...)`` to the API, as another site's
page would, and reports what the browser let it see.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
import trio

from rawstream import App, Config, Event, Request, Response, Server, WebSocket, serve
from rawstream.cors import CORS

PAGE = "<!doctype html><meta charset=utf-8><title>another site</title><p>another site</p>"

#: Open a WebSocket, send "ping", record what the browser reports, resolve on close (or
#: with "timeout" after 5 s, so a test that goes wrong fails with what was seen).
WEBSOCKET_JS = """url => new Promise(resolve => {
    const seen = [];
    setTimeout(() => resolve([...seen, "timeout"]), 5000);
    const ws = new WebSocket(url);
    ws.onopen = () => { seen.push("open"); ws.send("ping"); };
    ws.onmessage = event => { seen.push("message:" + event.data); ws.close(1000); };
    ws.onerror = () => seen.push("error");
    ws.onclose = event => { seen.push("close"); resolve(seen); };
})"""

#: Open an EventSource, record its events until "done" (or an error), then close it.  An
#: error while CONNECTING is a reconnection (kept going, recorded); CLOSED is a failure.
#: After 5 s it gives up with "timeout".
EVENTSOURCE_JS = """([url, withCredentials]) => new Promise(resolve => {
    const seen = [];
    const source = new EventSource(url, {withCredentials});
    setTimeout(() => { source.close(); resolve([...seen, "timeout"]); }, 5000);
    source.onopen = () => seen.push("open");
    source.onmessage = event => {
        seen.push(event.data);
        if (event.data === "done") { source.close(); resolve(seen); }
    };
    source.onerror = () => {
        seen.push(source.readyState === EventSource.CLOSED ? "failed" : "reconnecting");
        if (source.readyState === EventSource.CLOSED) resolve(seen);
    };
})"""


@dataclass
class Seen:
    """What the API's handlers saw (written by the server thread, read by the test)."""

    websockets: int = 0
    cookies: list[str] = field(default_factory=list)
    resumed_from: list[str | None] = field(default_factory=list)


class ServerThread:
    """A trio loop in a thread of its own, serving rawstream servers on 127.0.0.1 until
    stopped (the test's own code is Playwright's synchronous API, which cannot share it)."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the server thread did not start")

    async def _main(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._token = trio.lowlevel.current_trio_token()
            self._ready.set()
            await trio.sleep_forever()

    def start(self, app: App, **config: Any) -> str:
        """Serve ``app`` on a free port; return its origin (``http://127.0.0.1:PORT``)."""

        async def start() -> Server:
            server: Server = await self._nursery.start(
                partial(serve, app, host="127.0.0.1", port=0, config=Config(**config))
            )
            return server

        server = trio.from_thread.run(start, trio_token=self._token)
        return f"http://127.0.0.1:{server.port}"

    def stop(self) -> None:
        trio.from_thread.run_sync(self._nursery.cancel_scope.cancel, trio_token=self._token)
        self._thread.join(10)


def page_app() -> App:
    app = App()

    @app.get("/")
    async def page(request: Request) -> Response:
        return Response(PAGE, content_type="text/html; charset=utf-8")

    return app


def api_app(seen: Seen, page_origin: str) -> App:
    """The API: WebSocket echoes (default check, and one allowing the page's origin), and
    SSE routes without CORS, with it, and with credentials."""
    app = page_app()  # (its own page too: a same-origin page for comparison)

    async def echo(ws: WebSocket) -> None:
        seen.websockets += 1
        async for message in ws:
            await ws.send(message)

    app.add_route("/ws/echo", echo, kind="websocket")
    app.add_route("/ws/partner", echo, kind="websocket", origins=[page_origin])

    async def three(request: Request) -> AsyncIterator[Event]:
        seen.cookies.append(request.headers.get("cookie", ""))
        yield Event("one")
        yield Event("cookie:" + request.headers.get("cookie", ""))
        yield Event("done")

    app.add_route("/sse/closed", three, kind="sse", cors=CORS())  # the server's CORS off here
    app.add_route("/sse/open", three, kind="sse", cors=CORS(origins=(page_origin,)))
    credentialed = CORS(origins=(page_origin,), allow_credentials=True)
    app.add_route("/sse/credentialed", three, kind="sse", cors=credentialed)

    @app.sse("/sse/resume", cors=CORS(origins=(page_origin,)))
    async def resume(request: Request) -> AsyncIterator[Event]:
        """First connection: event 1 and the end (the browser reconnects); the second
        (with Last-Event-ID: 1): "done"."""
        last = request.headers.get("last-event-id")
        seen.resumed_from.append(last)
        if last is None:
            yield Event("first", id="1", retry=50)
        else:
            yield Event("after " + last)
            yield Event("done")

    @app.sse("/sse/resume-strict", cors=CORS(origins=(page_origin,), allow_headers=()))
    async def resume_strict(request: Request) -> AsyncIterator[Event]:
        async for event in resume(request):
            yield event

    return app


@dataclass
class Sites:
    page: str  # the other site's origin
    api: str  # ours
    seen: Seen


@pytest.fixture
def sites() -> Iterator[Sites]:
    servers = ServerThread()
    try:
        page = servers.start(page_app())
        seen = Seen()
        api = servers.start(api_app(seen, page), cors=CORS(origins=(page,)))
        yield Sites(page, api, seen)
    finally:
        servers.stop()


def ws_url(origin: str, path: str) -> str:
    return origin.replace("http://", "ws://") + path


def test_websocket_from_another_site_is_refused(sites: Sites, new_page: Callable[..., Any]) -> None:
    """Another site's page cannot open our WebSocket (the browser reports an error and a
    close, never an open), and our handler never runs; our own page can."""
    page = new_page(sites.page + "/")
    assert page.evaluate(WEBSOCKET_JS, ws_url(sites.api, "/ws/echo")) == ["error", "close"]
    assert sites.seen.websockets == 0
    own = new_page(sites.api + "/")
    assert own.evaluate(WEBSOCKET_JS, ws_url(sites.api, "/ws/echo")) == [
        "open",
        "message:ping",
        "close",
    ]
    assert sites.seen.websockets == 1


def test_websocket_from_an_allowed_site_opens(sites: Sites, new_page: Callable[..., Any]) -> None:
    """The route's origins= names the other site: its page's WebSocket opens and echoes."""
    page = new_page(sites.page + "/")
    assert page.evaluate(WEBSOCKET_JS, ws_url(sites.api, "/ws/partner")) == [
        "open",
        "message:ping",
        "close",
    ]


def test_websocket_server_allow_list(new_page: Callable[..., Any]) -> None:
    """Config.ws_allowed_origins names the other site: its page opens /ws/echo too."""
    servers = ServerThread()
    try:
        page_origin = servers.start(page_app())
        api = servers.start(api_app(Seen(), page_origin), ws_allowed_origins=(page_origin,))
        page = new_page(page_origin + "/")
        seen = page.evaluate(WEBSOCKET_JS, ws_url(api, "/ws/echo"))
        page.close()  # (before its servers stop: no screenshot of a dead page)
    finally:
        servers.stop()
    assert seen == ["open", "message:ping", "close"]


def test_eventsource_needs_cors(sites: Sites, new_page: Callable[..., Any]) -> None:
    """Without CORS the other site's EventSource fails, reading nothing (the browser blocks
    it: the server did answer); with CORS for that origin it reads every event."""
    page = new_page(sites.page + "/")
    assert page.evaluate(EVENTSOURCE_JS, [sites.api + "/sse/closed", False]) == ["failed"]
    assert sites.seen.cookies == [""]  # it ran; the browser withheld its answer
    assert page.evaluate(EVENTSOURCE_JS, [sites.api + "/sse/open", False]) == [
        "open",
        "one",
        "cookie:",
        "done",
    ]


def test_eventsource_with_credentials(sites: Sites, new_page: Callable[..., Any]) -> None:
    """withCredentials sends the cookie (127.0.0.1's, any port) only where the route allows
    credentials; on a route without them the browser refuses the answer."""
    page = new_page(sites.page + "/")
    page.evaluate("document.cookie = 'session=abc; path=/'")
    credentialed = page.evaluate(EVENTSOURCE_JS, [sites.api + "/sse/credentialed", True])
    assert credentialed == ["open", "one", "cookie:session=abc", "done"]
    without = page.evaluate(EVENTSOURCE_JS, [sites.api + "/sse/credentialed", False])
    assert without == ["open", "one", "cookie:", "done"]  # no credentials asked: none sent
    refused = page.evaluate(EVENTSOURCE_JS, [sites.api + "/sse/open", True])
    assert refused == ["failed"]  # sent with the cookie, but no Allow-Credentials: blocked
    assert sites.seen.cookies == ["session=abc", "", "session=abc"]


@pytest.mark.parametrize("path", ["/sse/resume", "/sse/resume-strict"])
def test_eventsource_resumes_across_origins(
    sites: Sites, new_page: Callable[..., Any], path: str
) -> None:
    """A cross-origin EventSource reconnects with Last-Event-ID and resumes, even where the
    route's allow_headers leaves Last-Event-ID out: chromium sends it on reconnection with no
    preflight (the Fetch standard would ask for one: whatwg/fetch#568)."""
    page = new_page(sites.page + "/")
    seen = page.evaluate(EVENTSOURCE_JS, [sites.api + path, False])
    assert seen == ["open", "first", "reconnecting", "open", "after 1", "done"]
    assert sites.seen.resumed_from == [None, "1"]
