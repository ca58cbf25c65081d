"""The console's dialogs (Retry, Schedule Mailing Activity, Constituent activity viewer, Settings) and
the small display helpers they share; each dialog module has an ``ask_…()`` wrapper that tests replace."""

from __future__ import annotations

import logging
from datetime import datetime

from PySide6.QtGui import QColor

from writeback_console.domain import Status

# Re-exported: the dialogs take it from here.
from writeback_console.ui.tasks import TaskGroup as TaskGroup

log = logging.getLogger(__name__)

#: What a missing value looks like in every table and form.
NONE_TEXT = "—"

#: The status colours, softened so dark text stays readable on them; the symbol and the label carry the
#: meaning as well, since colour alone must never be the only sign.
STATUS_COLOURS: dict[Status, str] = {
    Status.NEW: "#cfd8dc",
    Status.SCHEDULED: "#d1c4e9",
    Status.PROCESSING: "#ffe0a3",
    Status.SENT: "#c8e6c9",
    Status.ERROR: "#ffcdd2",
    Status.NO_REMOTE_RECIPIENTS: "#e0e0e0",
    Status.CANCELLED: "#ececec",
}
STATUS_SYMBOLS: dict[Status, str] = {
    Status.NEW: "●",
    Status.SCHEDULED: "◷",
    Status.PROCESSING: "↻",
    Status.SENT: "✓",
    Status.ERROR: "✕",
    Status.NO_REMOTE_RECIPIENTS: "∅",
    Status.CANCELLED: "⊗",
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
