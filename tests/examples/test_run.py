"""Each example runs as its header says: ``rawstream run examples/NAME.py`` and
``python examples/NAME.py [PORT]``; it serves its routes and stops cleanly on SIGTERM."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from conftest import EXAMPLES
from support.cli import start_cli, start_server_process, stop_process

#: A request each example answers at once, and its status (426: a WebSocket route).
PROBES = {
    "binary_feed": ("GET", "/feed", 426),
    "chat_room": ("GET", "/chat", 426),
    "live_feed": ("GET", "/prices?channel=NOPE", 404),
    "notifications": ("POST", "/notify/ann", 200),
    "presence": ("GET", "/", 200),
    "progress": ("GET", "/tasks/nope/events", 404),
    "query_stream": ("GET", "/stats", 200),
}


def test_every_example_has_a_probe() -> None:
    mine = {path.stem for path in EXAMPLES.glob("*.py")} - {"hello", "llm_relay"}
    assert mine == set(PROBES)


def start_script(name: str) -> tuple[subprocess.Popen[str], int]:
    """``python examples/NAME.py 0``; the process and the port it reports."""
    return start_server_process([sys.executable, str(EXAMPLES / f"{name}.py"), "0"])


@pytest.mark.parametrize("how", ["rawstream run", "python"])
@pytest.mark.parametrize("name", sorted(PROBES))
def test_the_example_runs_and_stops_cleanly(name: str, how: str) -> None:
    if how == "python":
        process, port = start_script(name)
    else:
        process, port = start_cli("run", f"examples/{name}.py")
    try:
        method, path, status = PROBES[name]
        response = httpx.request(method, f"http://127.0.0.1:{port}{path}", content=b"hi")
        assert response.status_code == status, response.text
    finally:
        code = stop_process(process, timeout=15)
    assert code == 0
