"""The console's dialogs (Retry, Schedule Mailing Activity, Constituent activity viewer, Settings) and
the small helpers they share; how statuses and times look is in ``ui/status_style``. Each dialog module
has an ``ask_…()`` wrapper that tests replace."""

from __future__ import annotations

import logging

# Re-exported: the dialogs take it from here.
from writeback_console.ui.tasks import TaskGroup as TaskGroup

log = logging.getLogger(__name__)


def count_text(n: int, noun: str, plural: str | None = None) -> str:
    """``1 writeback``, ``37 writebacks``, ``1,200 recipients``."""
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"
