"""The demo page: ``GET /`` and its assets, served by rawstream itself.

The page is plain HTML, CSS and JavaScript (no build step, no CDN), so what the browser runs
is what ``src/rawstream/demo/static/`` holds.  The files are read once, when the routes are
added (through :mod:`importlib.resources`, so an installed wheel serves them too), and served
from memory:

* only the fixed set :data:`ASSETS` is served (``/static/{name}`` matches one path segment,
  and a name outside the set is a 404 before anything touches the file system);
* each answer carries ``Cache-Control: no-cache`` and a strong ``ETag`` (a hash of the bytes),
  so a browser revalidates on every load and gets a bodiless ``304`` while nothing changed;
* a ``Content-Security-Policy`` limits the page to its own origin (scripts, styles and
  connections: ``'self'`` covers the ``ws://`` of the same host), which is also why the page has
  no inline script or style.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files

from rawstream.app import App
from rawstream.request import HTTPError, Request
from rawstream.response import Response

__all__ = ["ASSETS", "add_demo_page"]

#: The files the page is made of, and their content types.
ASSETS: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True, slots=True)
class _Asset:
    """One file, read once: its bytes, content type and entity tag."""

    body: bytes
    content_type: str
    etag: str

    def respond(self, request: Request) -> Response:
        """The file, or ``304`` when the client's ``If-None-Match`` already names it."""
        headers = [
            ("cache-control", "no-cache"),
            ("etag", self.etag),
            ("x-content-type-options", "nosniff"),
        ]
        if self.content_type.startswith("text/html"):
            headers.append(("content-security-policy", _CSP))
        if _none_match(request.headers.get("if-none-match", ""), self.etag):
            return Response(b"", status=304, headers=headers)
        return Response(self.body, headers=headers, content_type=self.content_type)


def _none_match(header: str, etag: str) -> bool:
    """Whether ``If-None-Match: header`` names ``etag`` (RFC 9110 13.1.2: ``*`` names any,
    and the comparison is weak, so ``W/"x"`` names ``"x"``)."""
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return etag in tags or "*" in tags


def _load_assets() -> dict[str, _Asset]:
    """Read every file of :data:`ASSETS` from the package's ``static`` folder."""
    folder = files(__package__ or "rawstream.demo") / "static"
    assets = {}
    for name, content_type in ASSETS.items():
        body = (folder / name).read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        assets[name] = _Asset(body, content_type, etag)
    return assets


def add_demo_page(app: App) -> None:
    """Serve ``GET /`` (the page) and ``GET /static/{name}`` (its assets) on ``app``.

    Raises:
        FileNotFoundError: an asset is missing from the package (a broken install).
    """
    assets = _load_assets()

    @app.get("/")
    async def index(request: Request) -> Response:
        """The demo page."""
        return assets["index.html"].respond(request)

    @app.get("/static/{name}")
    async def static(request: Request) -> Response:
        """One of the page's assets, by name; anything else is a 404."""
        asset = assets.get(request.path_params["name"])
        if asset is None:
            raise HTTPError(404, "no such asset")
        return asset.respond(request)
