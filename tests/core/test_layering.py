"""The sans-IO core stands alone: it imports without trio and never mentions it."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "src" / "rawstream"
CORE_DIR = PACKAGE_DIR / "core"

# Run in a fresh interpreter where importing trio fails.  The real package is imported:
# rawstream/__init__.py exports lazily (PEP 562), so ``import rawstream.core`` runs only the
# package's version module and the core.
_SCRIPT = textwrap.dedent(
    """
    import importlib.abc
    import sys

    class BlockTrio(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "trio" or name.startswith("trio."):
                raise ImportError(f"trio is blocked in this test: {name}")
            return None

    sys.meta_path.insert(0, BlockTrio())
    for name in [m for m in sys.modules if m == "trio" or m.startswith("trio.")]:
        del sys.modules[name]
    try:
        import trio  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the blocker does not work")

    import rawstream
    import rawstream.core
    from rawstream.core import (
        NEED_DATA, Event, HTTPConnection, RequestHead, WebSocketConnection, WebSocketState,
    )

    assert "trio" not in sys.modules, "rawstream.core imported trio"
    assert not any(m.startswith("trio.") for m in sys.modules)
    assert rawstream.core.__file__.startswith(sys.argv[1])
    assert rawstream.Event is Event and rawstream.__version__  # (names that need no trio)
    try:
        rawstream.Server
    except ImportError as exc:
        assert "trio" in str(exc), exc
    else:
        raise SystemExit("rawstream.Server imported without trio")

    http = HTTPConnection()
    http.receive_data(
        b"GET /ws HTTP/1.1\\r\\nHost: a\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n"
    )
    head = http.next_event()
    assert isinstance(head, RequestHead) and head.wants_upgrade_to == "websocket"
    ws = WebSocketConnection()
    ws.start(head)
    ws.accept()
    assert ws.state is WebSocketState.OPEN
    assert ws.data_to_send().startswith(b"HTTP/1.1 101 ")
    assert Event("x", id="1").encode() == b"id: 1\\ndata: x\\n\\n"
    assert "trio" not in sys.modules
    print("core ok without trio")
    """
)


def test_core_imports_and_runs_without_trio() -> None:
    """``import rawstream.core`` (the real package) imports and works in a process where
    importing trio fails; the server's names then fail to import, naming trio."""
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(PACKAGE_DIR)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "core ok without trio"


_TRIO_IMPORT = re.compile(r"^\s*(import\s+trio\b|from\s+trio\b)", re.MULTILINE)


def test_no_core_source_mentions_a_trio_import() -> None:
    """No file under src/rawstream/core has an `import trio` or `from trio` line."""
    sources = sorted(CORE_DIR.rglob("*.py"))
    assert sources, f"no sources found under {CORE_DIR}"
    offenders = [str(path) for path in sources if _TRIO_IMPORT.search(path.read_text())]
    assert offenders == []


def test_core_imports_nothing_from_the_server_layer() -> None:
    """The core never reaches up into the package (rawstream.server and the Trio-facing API)."""
    pattern = re.compile(
        r"^\s*(from\s+\.\.|from\s+rawstream\b(?!\.core\b)|import\s+rawstream\b(?!\.core\b))",
        re.MULTILINE,
    )
    offenders = [
        str(path) for path in sorted(CORE_DIR.rglob("*.py")) if pattern.search(path.read_text())
    ]
    assert offenders == []
