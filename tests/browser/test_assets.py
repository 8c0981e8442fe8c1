"""The page's routes over HTTP (httpx, no browser): ``GET /`` and ``/static/{name}`` serve
the packaged files with their content types, revalidation headers and nothing else."""

from __future__ import annotations

from importlib.resources import files

import httpx
import pytest

from rawstream.demo import build_demo
from rawstream.demo.page import ASSETS
from rawstream.hub import Hub

STATIC = files("rawstream.demo") / "static"


@pytest.fixture
async def base(start_server) -> str:
    server = await start_server(build_demo(Hub()))
    return f"http://127.0.0.1:{server.port}"


async def test_index_is_the_page_with_a_content_security_policy(base: str) -> None:
    """GET /: index.html as UTF-8 HTML, no-cache, an ETag, and a CSP limiting it to its own
    origin (which is why the page has no inline script)."""
    async with httpx.AsyncClient() as client:
        response = await client.get(base + "/")
    assert response.status_code == 200
    assert response.content == (STATIC / "index.html").read_bytes()
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["etag"].startswith('"')
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert b"<script>" not in response.content  # only <script src=...>


@pytest.mark.parametrize("name", sorted(ASSETS))
async def test_each_asset_has_its_content_type(base: str, name: str) -> None:
    """/static/NAME: the packaged file, byte for byte, with its content type."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{base}/static/{name}")
    assert response.status_code == 200
    assert response.content == (STATIC / name).read_bytes()
    assert response.headers["content-type"] == ASSETS[name]
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_the_page_links_only_served_assets(base: str) -> None:
    """Every /static/ URL the page names is one the server serves."""
    async with httpx.AsyncClient() as client:
        page = (await client.get(base + "/")).text
        linked = {part.split('"')[0] for part in page.split('"/static/')[1:]}
        assert linked == set(ASSETS) - {"index.html"}
        for name in linked:
            assert (await client.get(f"{base}/static/{name}")).status_code == 200


async def test_a_matching_etag_gets_304_without_a_body(base: str) -> None:
    """If-None-Match with the asset's ETag (or W/ of it, or *): 304, no body, same ETag; a
    stale tag gets the file."""
    async with httpx.AsyncClient() as client:
        first = await client.get(base + "/static/app.js")
        etag = first.headers["etag"]
        for header in (etag, f'"old", W/{etag}', "*"):
            again = await client.get(base + "/static/app.js", headers={"If-None-Match": header})
            assert again.status_code == 304, header
            assert again.content == b""
            assert again.headers["etag"] == etag
        stale = await client.get(base + "/static/app.js", headers={"If-None-Match": '"old"'})
    assert stale.status_code == 200 and stale.content == first.content


@pytest.mark.parametrize(
    "path",
    [
        "/static/page.py",
        "/static/",
        "/static/..%2Fpage.py",
        "/static/%2e%2e/__init__.py",
        "/static/../page.py",
        "/static/static/app.js",
        "/static/APP.JS",
        "/index.html",
    ],
)
async def test_nothing_else_is_served(base: str, path: str) -> None:
    """Names outside the fixed set, other folders, encoded traversal: 404."""
    async with httpx.AsyncClient() as client:
        # httpx would normalise "../" away; send the path as given.
        request = client.build_request("GET", base + "/")
        request.url = request.url.copy_with(raw_path=path.encode())
        response = await client.send(request)
    assert response.status_code == 404


async def test_head_answers_like_get_without_the_body(base: str) -> None:
    """HEAD /static/style.css: GET's headers (length included), no body."""
    async with httpx.AsyncClient() as client:
        head = await client.head(base + "/static/style.css")
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) == len((STATIC / "style.css").read_bytes())
