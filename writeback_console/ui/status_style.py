"""How statuses and times look everywhere in the console, written once.

The list's pills, the filter bar's buttons, the detail pane, the dialogs and the dashboard all take a
status's colour, symbol, icon and struck label from here, and show stored (UTC) times through
:func:`local_text`. Colour is never the only sign: the symbol or icon and the word go with it.
"""

from __future__ import annotations

from datetime import datetime

from PySide6.QtGui import QColor, QIcon, QPalette

from writeback_console.domain import Status
from writeback_console.ui import theme
from writeback_console.ui.resources import icon
from writeback_console.ui.theme import Scheme

#: A status's own colour on the light palette: pills, icons, dashboard cards. Error has two shades (see
#: ``status_color``). Adding a status is one line here and one in ``DARK_STATUS_COLORS``.
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
#: The same on the dark palette: lighter shades, which read as icons on a dark page and carry dark text.
DARK_STATUS_COLORS: dict[Status, str] = {
    Status.NEW: "#90a4ae",
    Status.SCHEDULED: "#b39ddb",
    Status.PROCESSING: "#ffca28",
    Status.SENT: "#66bb6a",
    Status.ERROR: "#ef5350",
    Status.NO_REMOTE_RECIPIENTS: "#9e9e9e",
    Status.CANCELLED: "#6e6e6e",  # faded towards the dark page, as the light one fades towards white
    Status.DISCARDED: "#858585",
}
#: Error while automatic retries remain: nearer the page's colour than the exhausted red, because nobody
#: needs to act yet (lighter on the light palette, darker on the dark one).
ERROR_RETRYING_COLOR = "#ef8a80"
DARK_ERROR_RETRYING_COLOR = "#8e4a45"
PALETTE_STATUS_COLORS = {Scheme.LIGHT: STATUS_COLORS, Scheme.DARK: DARK_STATUS_COLORS}
PALETTE_ERROR_RETRYING_COLORS = {Scheme.LIGHT: ERROR_RETRYING_COLOR, Scheme.DARK: DARK_ERROR_RETRYING_COLOR}
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
#: How much of a tint is the page's base colour (white, or the dark base): enough for the palette's text
#: to read on it at any status.
TINT_BASE = 0.72
TINT_BASES = {Scheme.LIGHT: "#ffffff", Scheme.DARK: theme.DARK_ROLES[QPalette.ColorRole.Base]}

#: What a missing value looks like in every table and form.
NONE_TEXT = "—"
TIME_FORMAT = "%Y-%m-%d %H:%M"
TIME_FORMAT_SECONDS = "%Y-%m-%d %H:%M:%S"


def status_color(status: Status, retries_remain: bool = False, scheme: Scheme | None = None) -> QColor:
    """The status's own colour on ``scheme`` (by default the palette in use); an Error with automatic
    retries left is the paler red."""
    scheme = scheme or theme.current().scheme
    if status is Status.ERROR and retries_remain:
        return QColor(PALETTE_ERROR_RETRYING_COLORS[scheme])
    return QColor(PALETTE_STATUS_COLORS[scheme][status])


def status_tint(status: Status, retries_remain: bool = False, scheme: Scheme | None = None) -> QColor:
    """A background of the status's colour mostly made of the page's base, for rows and cells that
    carry the palette's text colour."""
    scheme = scheme or theme.current().scheme
    strong = status_color(status, retries_remain, scheme)
    base = QColor(TINT_BASES[scheme])

    def mix(channel: int, towards: int) -> int:
        return round(channel + (towards - channel) * TINT_BASE)

    return QColor(
        mix(strong.red(), base.red()), mix(strong.green(), base.green()), mix(strong.blue(), base.blue())
    )


def status_icon(status: Status, retries_remain: bool = False) -> QIcon:
    """The status's icon in its colour, drawn in the palette in use whenever it is painted."""
    return icon(status_icon_name(status), lambda: status_color(status, retries_remain))


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
