"""The Keyboard shortcuts dialog (F1): every key of the window's actions, then the keys of the lists, in a
two-column table that reads like a reference card."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QFont, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

#: Keys that belong to a place rather than to an action of the window: where they work and what they do.
LIST_KEYS: tuple[tuple[str, str], ...] = (
    ("Down", "In the search box: go to the list"),
    ("Tab", "From the last filter: go to the list, its first row selected"),
    ("↑ ↓", "In the list: the previous or next writeback"),
    ("Enter", "In the list: open the selected writeback's detail"),
    ("← →", "In a row of toggles (statuses, Retried…): the previous or next toggle"),
    ("Space", "On a toggle: turn it on or off"),
    ("Enter", "On Top errors: open the list on that error"),
    ("Delete", "On the Mailings page: cancel the selected scheduled activity"),
)

#: "Retry selected (7)…" is "Retry selected" here: the count belongs to the moment, not to the key.
_COUNT = re.compile(r"\s*\([\d,]+\)")


def action_label(action: QAction) -> str:
    """An action's words without the mnemonic ampersand, a count or the trailing ellipsis."""
    return _COUNT.sub("", action.text().replace("&", "")).rstrip("…").strip()


def window_keys(actions: Iterable[QAction], pages: Iterable[QAction] = ()) -> list[tuple[str, str]]:
    """(key, what it does) for each action with a shortcut, in the order the window made them; the
    ``pages`` actions open a page, said as "Go to …" (Ctrl+6 opens Settings, Ctrl+, the Settings dialog)."""
    going = {id(action) for action in pages}
    keys = []
    for action in actions:
        if not action.shortcut().isEmpty():
            key = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            label = action_label(action)
            keys.append((key, f"Go to {label}" if id(action) in going else label))
    return keys


class ShortcutsDialog(QDialog):
    """Two columns, key and what it does, in sections: the window's shortcuts, then the list keys."""

    def __init__(
        self, sections: Sequence[tuple[str, Sequence[tuple[str, str]]]], parent: QWidget | None = None
    ):
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.table = QTableWidget(0, 2, self)
        self.table.setHorizontalHeaderLabels(["Key", "What it does"])
        self.table.verticalHeader().hide()
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setWordWrap(False)
        bold = QFont(self.font())
        bold.setBold(True)
        headings: list[QTableWidgetItem] = []
        for title, keys in sections:
            n = self.table.rowCount()
            self.table.insertRow(n)
            heading = QTableWidgetItem(title)
            heading.setTextAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom)
            headings.append(heading)
            heading.setFont(bold)
            self.table.setItem(n, 0, heading)
            self.table.setSpan(n, 0, 1, 2)
            for key, does in keys:
                n = self.table.rowCount()
                self.table.insertRow(n)
                key_item = QTableWidgetItem(key)
                key_item.setFont(bold)
                self.table.setItem(n, 0, key_item)
                self.table.setItem(n, 1, QTableWidgetItem(does))
        header = self.table.horizontalHeader()
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.table.resizeColumnToContents(0)
        # Room between the key and its words, so that "Ctrl+Shift+X" never runs into "Clear filters".
        self.table.setColumnWidth(0, self.table.columnWidth(0) + 24)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        # Air between the rows, and more above a section's title, so that the card reads at a glance.
        line = self.table.fontMetrics().height()
        heading_rows = {heading.row() for heading in headings}
        for n in range(self.table.rowCount()):
            self.table.setRowHeight(n, line + (18 if n in heading_rows else 10))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(600, 640)

    def rows(self) -> list[tuple[str, str]]:
        """What the table shows, row by row: (key, what it does); a section's title has no second cell."""
        out = []
        for n in range(self.table.rowCount()):
            key, does = self.table.item(n, 0), self.table.item(n, 1)
            out.append((key.text() if key else "", does.text() if does else ""))
        return out
