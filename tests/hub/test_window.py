"""The history window alone: trimming by count, bytes and age; what follows a position."""

from __future__ import annotations

import pytest

from rawstream.hub.message import HistoryLimits, Message
from rawstream.hub.window import Window


def message(seq: int, data: str = "x", at: float = 0.0) -> Message:
    return Message("c", str(seq), (seq, 0), data, published_at=at)


def test_trims_to_the_message_count_and_moves_the_base() -> None:
    window = Window(HistoryLimits(max_messages=3))
    for seq in range(1, 6):
        window.append(message(seq), now=0)
    assert len(window) == 3
    assert window.base == (2, 0)  # 1 and 2 were dropped: a resume from 1 has a gap
    assert window.head == (5, 0)
    assert window.covers((2, 0)) and not window.covers((1, 0))
    assert [m.id for m in window.after((2, 0), 10)] == ["3", "4", "5"]
    assert [m.id for m in window.after((3, 0), 1)] == ["4"]
    assert window.after((5, 0), 10) == []


def test_trims_to_bytes_but_keeps_the_newest() -> None:
    window = Window(HistoryLimits(max_bytes=500))
    window.append(message(1, "a" * 200), now=0)
    window.append(message(2, "b" * 200), now=0)
    assert len(window) == 1 and window.base == (1, 0)
    window.append(message(3, "c" * 10_000), now=0)  # alone over the limit: still kept
    assert [m.id for m in window.after((2, 0), 10)] == ["3"]


def test_trims_by_age() -> None:
    window = Window(HistoryLimits(max_age=10))
    window.append(message(1, at=100), now=100)
    window.append(message(2, at=105), now=105)
    window.trim(now=112)
    assert [m.id for m in window.after(window.base, 10)] == ["2"]
    window.trim(now=200)
    assert len(window) == 0 and window.base == window.head == (2, 0)


def test_positions_must_increase() -> None:
    window = Window(HistoryLimits())
    window.append(message(2), now=0)
    with pytest.raises(ValueError):
        window.append(message(2), now=0)


def test_compaction_keeps_order_over_many_appends() -> None:
    window = Window(HistoryLimits(max_messages=10))
    for seq in range(1, 10_001):
        window.append(message(seq), now=0)
    assert [m.id for m in window.after((9995, 0), 100)] == [str(s) for s in range(9996, 10_001)]
    assert window.first() is not None and window.first().id == "9991"  # type: ignore[union-attr]
