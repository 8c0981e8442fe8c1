"""Every server-tier test also fails if an error escaped one of its connections."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .helpers import ESCAPED


@pytest.fixture(autouse=True)
def no_error_escapes_a_connection() -> Iterator[None]:
    ESCAPED.clear()
    yield
    assert not ESCAPED, f"an error escaped a connection: {ESCAPED!r}"
