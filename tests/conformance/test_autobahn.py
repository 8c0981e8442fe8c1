"""WebSocket conformance: the Autobahn TestSuite's cases against the demo's ``/ws/echo``.

``kosoku`` (the dev extra) runs the Autobahn case files in fuzzingclient mode: it connects to
the server as a client, plays each case (framing, fragmentation, UTF-8, close handshakes,
limits, and permessage-deflate in 12.x and 13.x) and grades the server's answers.  Every case
must come out OK, NON-STRICT or INFORMATIONAL, for the exchange and for the close.

The demo runs with the limits the suite needs: its 9.x cases send messages of up to 16 MiB in
up to 65536 fragments (the defaults, 1 MiB and 1024, answer those with close 1009, which is
right for a server but graded FAILED), and pings off (the 12.x cases with 256-byte fragments
take long enough on a slow machine for a ping to arrive mid-case, which the suite does not
expect).  The full report lands in ``tests/artifacts/autobahn/`` (open ``index.html``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import missing
from support.cli import ROOT, start_cli, stop_process

PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}
REPORT_DIR = ROOT / "tests" / "artifacts" / "autobahn"
#: Cases run at once: the compression cases are CPU-bound on both sides.
PARALLELISM = int(os.environ.get("RAWSTREAM_AUTOBAHN_PARALLELISM", "4"))


def _kosoku() -> str:
    found = shutil.which("kosoku", path=str(Path(sys.executable).parent)) or shutil.which("kosoku")
    if found is None:
        missing("kosoku is not installed (Autobahn conformance); pip install -e '.[dev]'")
    return found


@pytest.mark.timeout(900)
def test_autobahn_fuzzingclient_against_ws_echo() -> None:
    """Every Autobahn case passes (OK, NON-STRICT or INFORMATIONAL) against /ws/echo."""
    kosoku = _kosoku()
    server, port = start_cli(
        "demo",
        "--ws-max-message-bytes",
        str(16 * 1024 * 1024),
        "--ws-max-fragments",
        "65536",
        "--ws-ping-interval",
        "0",
    )
    try:
        shutil.rmtree(REPORT_DIR, ignore_errors=True)
        REPORT_DIR.mkdir(parents=True)
        run = subprocess.run(
            [kosoku, f"127.0.0.1:{port}/ws/echo", "-p", str(PARALLELISM), "-o", str(REPORT_DIR)],
            capture_output=True,
            text=True,
            timeout=840,
            check=False,
        )
    finally:
        exit_code = stop_process(server)
    report = REPORT_DIR / "index.json"
    assert report.exists(), f"kosoku wrote no report (exit {run.returncode}):\n{run.stderr[-3000:]}"
    index = json.loads(report.read_text())
    (results,) = index.values()
    counts = Counter(case["behavior"] for case in results.values())
    failed = {
        case_id: (case["behavior"], case["behaviorClose"])
        for case_id, case in results.items()
        if case["behavior"] not in PASSING or case["behaviorClose"] not in PASSING
    }
    print(f"Autobahn: {len(results)} cases: {dict(sorted(counts.items()))}")
    assert len(results) > 500, run.stdout[-2000:] + run.stderr[-2000:]  # the whole suite ran
    assert not failed, f"{len(failed)} cases failed: {failed}\n{run.stdout[-3000:]}"
    assert exit_code == 0  # the demo shut down cleanly after the whole suite
