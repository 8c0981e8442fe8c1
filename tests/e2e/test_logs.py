"""Structured logs: the start-up line, and connection ids on every line about a connection.

The demo runs as a subprocess with its stderr in a file; the test reads the lines it wrote.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from support.cli import ROOT, stop_process


def _start(log: Path, *options: str) -> tuple[subprocess.Popen[bytes], int]:
    with log.open("wb") as stderr:  # (the child keeps its own copy of the descriptor)
        process = subprocess.Popen(
            [sys.executable, "-m", "rawstream", "demo", "--port", "0", *options],
            stderr=stderr,
            cwd=ROOT,
        )
    try:
        port = int(_wait_for(log, r"listening on http://127\.0\.0\.1:(\d+)").group(1))
    except BaseException:
        stop_process(process)
        raise
    return process, port


def _wait_for(log: Path, pattern: str) -> re.Match[str]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text())
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no {pattern!r} in the log:\n{log.read_text()}")


def _bad_request(port: int) -> tuple[int, int]:
    """Send a request with a header line that is not one; return its status and client port."""
    with httpx.Client() as client:  # a good request first: the next one is a new connection
        assert client.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nnot a header\r\n\r\n")
        status = int(sock.recv(4096).split(b" ", 2)[1])
        return status, sock.getsockname()[1]


def test_json_lines_name_the_connection_and_the_settings(tmp_path: Path) -> None:
    """--log-format json: every line is one JSON object; the first gives the addresses, pid
    and settings in force; a refused request's line carries its connection id and client."""
    log = tmp_path / "stderr"
    process, port = _start(log, "--log-format", "json", "--max-connections", "77")
    try:
        status, client_port = _bad_request(port)
        _wait_for(log, "bad request")
    finally:
        assert stop_process(process) == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    start = lines[0]
    assert start["addresses"] == [f"http://127.0.0.1:{port}"]
    assert start["pid"] == process.pid
    assert start["settings"]["max_connections"] == 77
    assert start["settings"]["ws_max_message_bytes"] == 1024 * 1024
    assert "max_connections=77" in start["message"]
    (refused,) = [line for line in lines if line["message"].startswith("bad request")]
    assert status == 400
    assert refused["level"] == "info"
    assert refused["client"] == f"127.0.0.1:{client_port}"
    assert isinstance(refused["conn"], int)
    assert "conn" not in start  # (a line about no connection names none)


def test_text_lines_bracket_the_connection(tmp_path: Path) -> None:
    """The text format puts ``[conn=ID HOST:PORT]`` before a connection's messages."""
    log = tmp_path / "stderr"
    process, port = _start(log)
    try:
        _, client_port = _bad_request(port)
        line = _wait_for(log, r".*bad request.*").group(0)
    finally:
        assert stop_process(process) == 0
    assert re.search(rf"INFO \[conn=\d+ 127\.0\.0\.1:{client_port}\] bad request: ", line), line
    assert re.search(r"settings: max_connections=10000 .* drain_timeout=10\.0", log.read_text())


def test_json_lines_of_workers_pass_the_supervisor_whole(tmp_path: Path) -> None:
    """Under --workers 2 every line on the supervisor's stderr is one JSON object: its own,
    and each worker's, which names the worker and its pid (not prefixed as text lines are)."""
    log = tmp_path / "stderr"
    process, port = _start(log, "--workers", "2", "--log-format", "json")
    try:
        _wait_for(log, r"listening on http://127\.0\.0\.1:\d+ \(2 workers\)")
        _bad_request(port)
        _wait_for(log, "bad request")
    finally:
        assert stop_process(process) == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    starts = [line for line in lines if line.get("settings")]
    assert sorted(line["worker"] for line in starts) == ["1", "2"]
    assert len({line["pid"] for line in starts}) == 2
    assert process.pid not in {line["pid"] for line in starts}
    (refused,) = [line for line in lines if line["message"].startswith("bad request")]
    assert refused["worker"] in ("1", "2") and isinstance(refused["conn"], int)
