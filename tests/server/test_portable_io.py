"""The server on the portable I/O path: Trio's own ``send_all``/``receive_some`` for plain TCP,
as where sockets are not file descriptors (Windows; ``fastio.DIRECT_IO`` False).

No Windows machine runs these tests, so the server, SSE and WebSocket tiers are run again here
on Linux, in a subprocess, with ``RAWSTREAM_TEST_PORTABLE_IO=1``: tests/conftest.py then turns
``DIRECT_IO`` off for every test."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rawstream
from rawstream.server.fastio import SocketIO, socket_io

from .test_fastio import tcp_pair

ROOT = Path(__file__).resolve().parents[2]
ENV = "RAWSTREAM_TEST_PORTABLE_IO"

#: What the portable run covers: the server tier and the end-to-end HTTP, SSE and WebSocket
#: tests, over real sockets.
TIERS = ["tests/server", "tests/e2e/test_http.py", "tests/e2e/test_sse.py"]
TIERS += ["tests/e2e/test_websocket.py"]

#: Left out, each because it tests direct socket I/O itself, which the portable path does
#: without (not because it fails for another reason):
EXCLUDED = [
    # SocketIO, write-through, the receiver's handoff: the direct path's own unit tests.
    "--ignore=tests/server/test_fastio.py",
    # Parking an idle socket in the readiness watcher needs a direct (plain, fd) socket.
    "--deselect=tests/server/test_states.py::test_receiver_parks_wakes_and_is_handed_off",
    "--deselect=tests/server/test_states.py::test_a_parked_socket_is_read_by_the_watcher",
    # This test itself (it would run itself again).
    "--deselect=tests/server/test_portable_io.py::test_the_server_tiers_pass_on_portable_io",
]

#: The portable run takes about 15 s on the development machine; its subprocess is bounded well
#: above that, and this test's own timeout above the subprocess's.
RUN_TIMEOUT = 300


async def test_socket_io_follows_the_runs_io_mode() -> None:
    """Direct I/O on POSIX, except in a portable run (where this test proves the switch is in
    force for the tests that run with it)."""
    server, client = await tcp_pair()
    portable = os.environ.get(ENV) == "1" or os.name != "posix"
    io = socket_io(server)
    if portable:
        assert io is None
    else:
        assert isinstance(io, SocketIO)
        assert io.fileno() == server.socket.fileno()
    await server.aclose()
    await client.aclose()


@pytest.mark.timeout(RUN_TIMEOUT + 60)
def test_the_server_tiers_pass_on_portable_io() -> None:
    # The subprocess imports the same rawstream sources as this process.
    sources = str(Path(rawstream.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (sources, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, ENV: "1", "PYTHONPATH": path}
    command = [sys.executable, "-m", "pytest", *TIERS, "-q", "-p", "no:cacheprovider", "-rA"]
    start = time.monotonic()
    result = subprocess.run(
        [*command, *EXCLUDED],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    took = time.monotonic() - start
    output = result.stdout + result.stderr
    tail = output[-6000:]
    assert result.returncode == 0, f"the portable run failed ({took:.0f} s):\n{tail}"
    summary = result.stdout.strip().splitlines()[-1]  # "113 passed, 2 deselected in 8.50s"
    passed = re.search(r"\b(\d+) passed\b.* in [\d.]+s", summary)
    assert passed is not None and int(passed.group(1)) > 0, f"ran no test:\n{tail}"
    # The switch was in force there: the mode check below passed only if socket_io said None.
    mode_check = "PASSED tests/server/test_portable_io.py::test_socket_io_follows_the_runs_io_mode"
    assert mode_check in result.stdout, f"the mode check did not run:\n{tail}"
