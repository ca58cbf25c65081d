"""Garbage is collected on the GUI thread, young generations often, the whole heap only when it grew."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication

from writeback_console.ui import gc_guard


@pytest.fixture
def collections_made(qapp: QApplication) -> Iterator[list[int]]:
    """The generation of every collection made while the test runs."""
    made: list[int] = []

    def seen(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            made.append(info["generation"])

    gc.callbacks.append(seen)
    yield made
    gc.callbacks.remove(seen)


class _Linked:
    """An object in a reference cycle, as many of the dispatcher's and SQLAlchemy's are."""

    def __init__(self) -> None:
        self.me = self


def test_the_whole_heap_is_collected_only_once_it_has_grown_by_a_quarter(
    qapp: QApplication, collections_made: list[int]
) -> None:
    collector = gc_guard.GuiThreadCollector()
    collector._timer.stop()  # the test calls check() itself
    try:
        # Many young collections, of garbage: never the whole heap (it costs 70 ms and more).
        for _ in range(300):
            [_Linked() for _ in range(800)]
            collector.check()
        assert collections_made and set(collections_made) <= {0, 1}
        assert gc.get_count()[2] > gc.get_threshold()[2]  # a full one would be due by the counts alone
        # The heap grows by more than a quarter: now the whole of it is collected, once.
        grown = [_Linked() for _ in range(sys.getallocatedblocks() // 2)]
        collections_made.clear()
        for _ in range(30):
            collector.check()
        assert collections_made.count(2) == 1
        del grown
    finally:
        collector.deleteLater()
        gc.disable()  # the session's own collector keeps it off


def test_young_collections_are_checked_for_twenty_times_a_second(qapp: QApplication) -> None:
    # The dispatcher's threads create thousands of objects a second: looked at every 250 ms, one young
    # collection of them held the GIL for 60 ms.
    collector = gc_guard.GuiThreadCollector()
    try:
        assert collector._timer.interval() <= 50 and collector._timer.isActive()
    finally:
        collector._timer.stop()
        collector.deleteLater()
        gc.disable()


def test_what_start_up_built_is_kept_out_of_later_collections(
    qapp: QApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gc_guard, "_frozen", False)
    try:
        gc_guard.freeze_startup_heap()
        frozen = gc.get_freeze_count()
        assert frozen > 10_000
        gc_guard.freeze_startup_heap()  # once per process
        assert gc.get_freeze_count() <= frozen  # nothing more (frozen objects may still be freed)
    finally:
        # The test process goes on to build and close many windows: their garbage must stay collectable.
        gc.unfreeze()
