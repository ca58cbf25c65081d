"""How statuses and times look everywhere in the console, written once.

The list's pills, the filter bar's buttons, the detail pane, the dialogs and the dashboard all take a
status's colour, symbol, icon and struck label from here, and show stored (UTC) times through
:func:`local_text`. Colour is never the only sign: the symbol or icon and the word go with it.
"""

from __future__ import annotations

from datetime import datetime

from PySide6.QtGui import QColor

from writeback_console.domain import Status

#: A status's own colour: pills, icons, dashboard cards. Error has two shades (see ``status_color``).
STATUS_COLORS: dict[Status, str] = {
    Status.NEW: "#546e7a",  # blue-grey
    Status.SCHEDULED: "#7b52c7",  # violet
    Status.PROCESSING: "#f0a818",  # amber
    Status.SENT: "#2e7d32",  # green
    Status.ERROR: "#c62828",  # red: automatic retries used up, a person must act
    Status.NO_REMOTE_RECIPIENTS: "#9a9a9a",  # grey
    Status.CANCELLED: "#b3b3b3",  # a lighter grey, and the label struck through
    Status.DISCARDED: "#5f5f5f",  # dark grey: an advisor stopped retrying it
}
#: Error while automatic retries remain: lighter, because nobody needs to act yet.
ERROR_RETRYING_COLOR = "#ef8a80"
#: Statuses whose label is struck through: what staff withdrew, kept so that it is not made again.
STRUCK_STATUSES = frozenset({Status.CANCELLED})
#: The symbol that goes with the word where no icon can be drawn (plain text, tree items, tooltips).
STATUS_SYMBOLS: dict[Status, str] = {
    Status.NEW: "●",
    Status.SCHEDULED: "◷",
    Status.PROCESSING: "↻",
    Status.SENT: "✓",
    Status.ERROR: "✕",
    Status.NO_REMOTE_RECIPIENTS: "∅",
    Status.CANCELLED: "⊗",
    Status.DISCARDED: "⊖",
}
#: How much of a tint is white: enough for dark text to read on it at any status.
TINT_WHITE = 0.72

#: What a missing value looks like in every table and form.
NONE_TEXT = "—"
TIME_FORMAT = "%Y-%m-%d %H:%M"
TIME_FORMAT_SECONDS = "%Y-%m-%d %H:%M:%S"


def status_color(status: Status, retries_remain: bool = False) -> QColor:
    """The status's own colour; an Error with automatic retries left is the lighter red."""
    if status is Status.ERROR and retries_remain:
        return QColor(ERROR_RETRYING_COLOR)
    return QColor(STATUS_COLORS[status])


def status_tint(status: Status, retries_remain: bool = False) -> QColor:
    """A pale background of the status's colour, for rows and cells that carry dark text."""
    strong = status_color(status, retries_remain)

    def mix(channel: int) -> int:
        return round(channel + (255 - channel) * TINT_WHITE)

    return QColor(mix(strong.red()), mix(strong.green()), mix(strong.blue()))


def status_text(status: Status) -> str:
    """The status in plain text: symbol and word."""
    return f"{STATUS_SYMBOLS[status]} {status.label}"


def status_icon_name(status: Status) -> str:
    """The icon of the status among the console's resources."""
    return f"status-{status.value}"


def local_text(moment: datetime | None, *, seconds: bool = False) -> str:
    """A stored (UTC) time as the user reads it: in the local time zone, to the minute."""
    if moment is None:
        return NONE_TEXT
    return moment.astimezone().strftime(TIME_FORMAT_SECONDS if seconds else TIME_FORMAT)
