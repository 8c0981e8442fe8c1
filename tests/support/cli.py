"""Start the ``rawstream`` command in a subprocess and learn the port it bound."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start_cli(*args: str) -> tuple[subprocess.Popen[str], int]:
    """Run ``python -m rawstream ARGS --port 0``; return the process and its bound port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "rawstream", *args, "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    for line in process.stderr:
        found = re.search(r"listening on https?://127\.0\.0\.1:(\d+)", line)
        if found:
            return process, int(found.group(1))
    raise AssertionError(f"rawstream {' '.join(args)} did not report its port")
