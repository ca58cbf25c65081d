"""Garbage collection on the GUI thread only, in pieces small enough not to stall it.

Python's cyclic garbage collector runs in whichever thread happens to allocate when a threshold is
reached. If that is a worker thread and the garbage holds a Qt object (a closed page's model, a dialog),
Qt destroys an object of the GUI thread from another thread, and the process crashes later in the event
loop. So automatic collection is switched off and a timer on the GUI thread collects instead.

A collection holds the GIL from start to end, so the GUI thread is stalled for as long as it takes, and
it takes as long as the generation collected is big. While the dispatcher runs, its threads create
objects fast: the timer looks often (every 50 ms), so the young generations stay small, and the whole
heap is collected only once it has grown by a quarter since the last full collection, as CPython's own
collector decides (it counts long-lived objects; here the interpreter's allocated blocks stand for
them). What was built at start-up (modules, classes, the window) lives as long as the process: once
the window is up, ``freeze_startup_heap`` takes it out of every collection for good.
"""

from __future__ import annotations

import gc
import sys

from PySide6.QtCore import QObject, QTimer, Slot

#: How often the GUI thread checks whether a collection is due (ms).
INTERVAL_MS = 50
#: The whole heap is collected only once it has grown by this fraction since the last full collection.
FULL_COLLECTION_GROWTH = 0.25


class GuiThreadCollector(QObject):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thresholds = gc.get_threshold()
        gc.disable()
        #: The interpreter's allocated blocks after the last full collection (or at the start).
        self._blocks_after_full = sys.getallocatedblocks()
        self._timer = QTimer(self)
        self._timer.setObjectName("gui-thread-gc")
        self._timer.setInterval(INTERVAL_MS)
        self._timer.timeout.connect(self.check)
        self._timer.start()

    def due_generation(self) -> int | None:
        """The oldest generation a collection is due for now, or None."""
        counts = gc.get_count()
        if counts[2] > self._thresholds[2] and self._grown_by_a_quarter():
            return 2
        if counts[1] > self._thresholds[1]:
            return 1
        if counts[0] > self._thresholds[0]:
            return 0
        return None

    def _grown_by_a_quarter(self) -> bool:
        return sys.getallocatedblocks() > (1 + FULL_COLLECTION_GROWTH) * self._blocks_after_full

    @Slot()
    def check(self) -> None:
        """Collect the generation that is due, if any."""
        generation = self.due_generation()
        if generation is None:
            return
        gc.collect(generation)
        if generation == 2:
            self._blocks_after_full = sys.getallocatedblocks()

    def stop(self) -> None:
        self._timer.stop()
        gc.enable()


_installed: GuiThreadCollector | None = None
_frozen = False


def install(app: QObject) -> GuiThreadCollector:
    """Once per process, on the GUI thread, after the QApplication exists."""
    global _installed
    if _installed is None:
        _installed = GuiThreadCollector(app)
    return _installed


def freeze_startup_heap() -> None:
    """Once per process, when the window is built: what exists now is kept out of every collection.

    A full collection of the start-up heap alone holds the GIL for about 70 ms; frozen, those objects
    are never traversed again (nor freed: they live as long as the application anyway).
    """
    global _frozen
    if _frozen:
        return
    _frozen = True
    gc.collect()
    gc.freeze()
    if _installed is not None:
        _installed._blocks_after_full = sys.getallocatedblocks()
