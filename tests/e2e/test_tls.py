"""TLS: https SSE and wss, with certificates from trustme."""

from __future__ import annotations

import ssl

import httpx
import pytest
import trio
from conftest import require
from httpx_sse import aconnect_sse
from support.testapp import Probes, build_app
from trio_websocket import open_websocket_url


@pytest.fixture
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    trustme = require("trustme", "TLS test certificates")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return server_context, client_context


async def test_https_sse(start_server, tls) -> None:
    """An SSE stream over https, verified against the test CA."""
    server_context, client_context = tls
    server = await start_server(build_app(Probes()), ssl_context=server_context)
    async with httpx.AsyncClient(verify=client_context) as client:
        health = await client.get(f"https://127.0.0.1:{server.port}/healthz")
        async with aconnect_sse(
            client, "GET", f"https://127.0.0.1:{server.port}/sse/count?n=3"
        ) as source:
            ids = [e.id async for e in source.aiter_sse()]
    assert health.json() == {"status": "ok"}
    assert ids == ["1", "2", "3"]


async def test_wss_echo(start_server, tls) -> None:
    """A WebSocket echo over wss."""
    server_context, client_context = tls
    server = await start_server(build_app(Probes()), ssl_context=server_context)
    async with open_websocket_url(
        f"wss://127.0.0.1:{server.port}/ws/echo", ssl_context=client_context
    ) as ws:
        await ws.send_message("secure")
        assert await ws.get_message() == "secure"


async def test_plain_http_to_tls_port_does_not_hurt(start_server, tls) -> None:
    """A plaintext request to the TLS port fails for that client only."""
    server_context, client_context = tls
    server = await start_server(build_app(Probes()), ssl_context=server_context)
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        with trio.move_on_after(5):
            while await stream.receive_some(1000):
                pass
    async with httpx.AsyncClient(verify=client_context) as client:
        assert (await client.get(f"https://127.0.0.1:{server.port}/healthz")).status_code == 200


async def test_cli_serves_tls_with_certfile_and_keyfile(tmp_path) -> None:
    """`rawstream demo --certfile --keyfile` serves https."""
    trustme = require("trustme", "TLS test certificates")
    from support.cli import start_cli, stop_process

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    process, port = await trio.to_thread.run_sync(
        start_cli,
        "demo",
        "--certfile",
        str(tmp_path / "cert.pem"),
        "--keyfile",
        str(tmp_path / "key.pem"),
    )
    try:
        async with httpx.AsyncClient(verify=client_context) as client:
            response = await client.get(f"https://127.0.0.1:{port}/healthz")
        assert response.json()["status"] == "ok"
    finally:
        code = await trio.to_thread.run_sync(stop_process, process)
    assert code == 0
