"""The console's dialogs (Retry, Schedule Mailing Activity, Constituent activity viewer, Settings) and
the small display helpers they share; each dialog module has an ``ask_…()`` wrapper that tests replace."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtGui import QColor

from writeback_console.domain import Status
from writeback_console.ui.tasks import Task, TaskRunner

log = logging.getLogger(__name__)

#: What a missing value looks like in every table and form.
NONE_TEXT = "—"

#: DESIGN §2 colours, softened so dark text stays readable on them; the symbol and the label carry the
#: meaning as well, since colour alone must never be the only sign.
STATUS_COLOURS: dict[Status, str] = {
    Status.NEW: "#cfd8dc",
    Status.SCHEDULED: "#d1c4e9",
    Status.PROCESSING: "#ffe0a3",
    Status.SENT: "#c8e6c9",
    Status.ERROR: "#ffcdd2",
    Status.NO_REMOTE_RECIPIENTS: "#e0e0e0",
}
STATUS_SYMBOLS: dict[Status, str] = {
    Status.NEW: "●",
    Status.SCHEDULED: "◷",
    Status.PROCESSING: "↻",
    Status.SENT: "✓",
    Status.ERROR: "✕",
    Status.NO_REMOTE_RECIPIENTS: "∅",
}


def status_text(status: Status) -> str:
    """The status as a pill shows it: symbol and label."""
    return f"{STATUS_SYMBOLS[status]} {status.label}"


def status_colour(status: Status) -> QColor:
    return QColor(STATUS_COLOURS[status])


def local_text(moment: datetime | None, *, seconds: bool = False) -> str:
    """A stored (UTC) time as the user reads it: in the local time zone, to the minute."""
    if moment is None:
        return NONE_TEXT
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def count_text(n: int, noun: str, plural: str | None = None) -> str:
    """``1 writeback``, ``37 writebacks``, ``1,200 recipients``."""
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"


class TaskGroup:
    """The background tasks one widget waits for; their results are dropped once the widget is destroyed,
    so that a late answer never reaches a deleted widget."""

    def __init__(self, owner: QObject, runner: TaskRunner) -> None:
        self._runner = runner
        self._tasks: set[Task] = set()
        owner.destroyed.connect(self.cancel_all)

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> Task:
        task: Task | None = None

        def done(result: Any) -> None:
            self._tasks.discard(task)
            if on_done is not None:
                on_done(result)

        def failed(exc: BaseException) -> None:
            self._tasks.discard(task)
            if on_error is not None:
                on_error(exc)
            else:
                log.error("background task failed: %s", getattr(exc, "__traceback_text__", exc))

        task = self._runner.submit(fn, *args, on_done=done, on_error=failed)
        self._tasks.add(task)
        return task

    def cancel_all(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
