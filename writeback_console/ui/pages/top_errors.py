"""The Top errors page: the Error rows of the whole queue grouped by the reason of their last error, with
how many failed in the last 24 hours against the 24 hours before; a group opens the Writeback List
filtered to it."""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session, sessionmaker

from writeback_console.domain import Status, utcnow
from writeback_console.error_groups import ErrorGroup, group_by_reason, trend_text
from writeback_console.store import listing
from writeback_console.store.engine import read_session
from writeback_console.ui.resources import icon
from writeback_console.ui.status_style import local_text, status_color
from writeback_console.ui.tasks import Task, TaskGroup, TaskRunner

Factory = sessionmaker[Session]
COLUMNS = ("Reason", "Rows in Error", "Failed last 24 h", "24 h before", "Trend")
REASON_ROLE = Qt.ItemDataRole.UserRole + 1


def top_errors(factory: Factory, now: datetime) -> list[ErrorGroup]:
    """The Error rows grouped by reason; runs on a worker thread.

    The database groups by exact message in one pass over the Error rows (the status index), so what
    comes back is one row per distinct message; those are grouped by reason here.
    """
    with read_session(factory) as session:
        counts = listing.error_message_counts(session, now=now)
    return group_by_reason((c.message, c.rows, c.last_day, c.day_before) for c in counts)


class TopErrorsPage(QWidget):
    """Why writebacks fail, queue-wide.

    Signals:
        reason_chosen(str): open the Writeback List on the Error rows of this reason.
    """

    reason_chosen = Signal(str)

    def __init__(self, factory: Factory, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("topErrorsPage")
        self._factory = factory
        self._runner = TaskGroup(self, runner)
        self._task: Task | None = None
        self.groups: list[ErrorGroup] = []

        title = QLabel("Top errors")
        title.setObjectName("pageTitle")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        font.setBold(True)
        title.setFont(font)
        self.note = QLabel("Reading the Error rows…")
        self.note.setWordWrap(True)
        self.refresh_button = QPushButton(icon("refresh"), "Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        self.open_button = QPushButton("Show in the list")
        self.open_button.setToolTip(
            "Open the Writeback List on the Error rows of the chosen reason; "
            "Enter or a double click does it too"
        )
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(self._open_current)

        self.tree = QTreeWidget()
        self.tree.setObjectName("topErrors")
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideRight)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.itemActivated.connect(self._activated)
        self.tree.currentItemChanged.connect(self._current_changed)

        top = QHBoxLayout()
        top.addWidget(title)
        top.addStretch(1)
        top.addWidget(self.open_button)
        top.addWidget(self.refresh_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.addLayout(top)
        layout.addWidget(self.note)
        layout.addWidget(self.tree, 1)

    @Slot()
    def refresh(self) -> None:
        if self._task is not None:
            self._task.cancel()
        now = utcnow()
        self.refresh_button.setEnabled(False)
        self._task = self._runner.submit(
            top_errors, self._factory, now, on_done=lambda g: self._show(g, now), on_error=self._failed
        )

    def _show(self, groups: list[ErrorGroup], now: datetime) -> None:
        self._task = None
        self.refresh_button.setEnabled(True)
        self.groups = groups
        current = self.tree.currentItem()
        wanted = current.data(0, REASON_ROLE) if current is not None else None
        self.tree.clear()
        red = status_color(Status.ERROR)
        for group in groups:
            item = QTreeWidgetItem(
                [
                    group.reason,
                    f"{group.rows:,}",
                    f"{group.last_day:,}",
                    f"{group.day_before:,}",
                    trend_text(group),
                ]
            )
            item.setData(0, REASON_ROLE, group.reason)
            messages = "1 message" if group.messages == 1 else f"{group.messages:,} different messages"
            item.setToolTip(0, f"{group.reason}\n\n{messages}, for example:\n{group.example}")
            item.setToolTip(4, "Failed in the last 24 hours minus failed in the 24 hours before")
            for column in range(1, len(COLUMNS)):
                item.setTextAlignment(column, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if group.trend > 0:
                item.setForeground(4, red)
            self.tree.addTopLevelItem(item)
            if group.reason == wanted:
                self.tree.setCurrentItem(item)
        rows = sum(g.rows for g in groups)
        if groups:
            self.note.setText(
                f"{rows:,} writebacks in Error, in {len(groups):,} "
                f"{'reason' if len(groups) == 1 else 'reasons'} (emails, ids, references and quoted values "
                "left out). “Failed last 24 h” counts those rows whose last failure was in the 24 hours "
                f"before {local_text(now)}, “24 h before” the 24 hours before that. Double-click a reason "
                "to see its writebacks in the list."
            )
        else:
            self.note.setText("No writeback is in Error.")
        self.open_button.setEnabled(self.tree.currentItem() is not None)

    def _failed(self, error: BaseException) -> None:
        self._task = None
        self.refresh_button.setEnabled(True)
        self.note.setText(f"The errors could not be read: {error}")

    @Slot(QTreeWidgetItem, QTreeWidgetItem)
    def _current_changed(self, current: QTreeWidgetItem | None, _previous: QTreeWidgetItem | None) -> None:
        self.open_button.setEnabled(current is not None)

    @Slot(QTreeWidgetItem, int)
    def _activated(self, item: QTreeWidgetItem, _column: int) -> None:
        reason = item.data(0, REASON_ROLE)
        if isinstance(reason, str):
            self.reason_chosen.emit(reason)

    @Slot()
    def _open_current(self) -> None:
        item = self.tree.currentItem()
        if item is not None:
            self._activated(item, 0)
