"""The Constituent activity viewer: CRM360 System Activities for one email, beside our queue rows for it."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QBrush, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session, sessionmaker

from writeback_console.personify import odata
from writeback_console.personify.client import PersonifyClient
from writeback_console.personify.values import Activity, Constituent
from writeback_console.store import listing
from writeback_console.store.engine import read_session
from writeback_console.store.rows import WritebackRow
from writeback_console.ui.dialogs import TaskGroup, errors
from writeback_console.ui.status_pill import text_color_on
from writeback_console.ui.status_style import NONE_TEXT, local_text, status_text, status_tint
from writeback_console.ui.tasks import Task, TaskRunner
from writeback_console.ui.theme import set_tone

ClientFactory = Callable[[], PersonifyClient]

#: Queue rows shown for one email; a person with more than this has a problem the list is better at.
MAX_QUEUE_ROWS = 1000
#: CRM360 shows these first, in this order; any other field the service sends follows alphabetically.
FIELD_ORDER = (
    "ActivityId",
    "MasterCustomerId",
    "SubCustomerId",
    "Subsystem",
    "ActivityCode",
    "ActivitySubcode",
    "ActivityDate",
    "ActivityText",
    "AddOper",
    "AddOperator",
    "AddDate",
    "ModOper",
    "ModDate",
)


# --- work done off the GUI thread ----------------------------------------------------------------


def lookup_constituents(client_factory: ClientFactory, email: str) -> list[Constituent]:
    with client_factory() as client:
        return client.find_constituents_by_email(email)


def load_activities(client_factory: ClientFactory, master: str, sub: int) -> list[Activity]:
    with client_factory() as client:
        return client.list_activities(master, sub)


def queue_rows_for_email(factory: sessionmaker[Session], email: str) -> list[WritebackRow]:
    """Our queue rows for exactly this email (any case), newest first."""
    wanted = email.strip().lower()
    with read_session(factory) as session:
        # The text filter matches the start of the email (and refs, ids, mailing names); keep exact hits.
        rows = listing.iter_rows(session, listing.WritebackFilter(text=wanted), limit=MAX_QUEUE_ROWS * 2)
        return [r for r in rows if (r.email or "").lower() == wanted][:MAX_QUEUE_ROWS]


# --- formatting ----------------------------------------------------------------------------------


def field_value(value: Any) -> str:
    """A raw PDS field as a person reads it: /Date(…)/ as local time, flags as Yes/No, JSON as JSON."""
    if value is None:
        return NONE_TEXT
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, str) and value.startswith("/Date("):
        try:
            return local_text(odata.parse_date(value), seconds=True)
        except ValueError:
            return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, indent=1)
    return str(value)


def ordered_fields(raw: Mapping[str, Any]) -> list[tuple[str, Any]]:
    known = [(name, raw[name]) for name in FIELD_ORDER if name in raw]
    rest = sorted((name, value) for name, value in raw.items() if name not in FIELD_ORDER)
    return known + [(n, v) for n, v in rest if n != "__metadata"]


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def constituent_id(c: Constituent) -> str:
    return f"{c.master_customer_id}-{c.sub_customer_id}"


# --- the viewer ----------------------------------------------------------------------------------


class ConstituentViewer(QWidget):
    """Search by email → constituent(s) → activities newest first and every field of one; plus queue rows.

    Signals:
        open_ref(str): the user double-clicked a queue row's reference; show it in the Writeback List.
    """

    open_ref = Signal(str)

    def __init__(
        self,
        factory: sessionmaker[Session],
        runner: TaskRunner,
        client_factory: ClientFactory,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._factory = factory
        # Every result comes back through the group, which drops it once this widget is gone.
        self._runner = TaskGroup(self, runner)
        self._client_factory = client_factory
        #: Bumped by every search, so that the answer to an older one is recognised and dropped.
        self._generation = 0
        self._tasks: list[Task] = []
        self._pending = 0
        self._email = ""
        self._error_details = ""
        self.constituents: list[Constituent] = []
        self._chosen: Constituent | None = None
        self.activities: list[Activity] = []
        self.queue_rows: list[WritebackRow] = []

        self.email_edit = QLineEdit()
        self.email_edit.setPlaceholderText("Email address, e.g. ann@example.org")
        self.email_edit.setClearButtonEnabled(True)
        self.email_edit.returnPressed.connect(self._search_clicked)
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self._search_clicked)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setMaximumWidth(160)
        self.progress.setFormat("")
        self.progress.hide()
        self.busy_label = QLabel()
        self.busy_label.setEnabled(False)

        self.message_label = QLabel("Type an email address and press Enter to see what reached Personify360.")
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details_button = QPushButton("Details…")
        self.details_button.clicked.connect(self._show_error_details)
        self.details_button.hide()

        self.constituent_list = QTreeWidget()
        self.constituent_list.setHeaderLabels(["Constituent", "Name", "Record type", "Email"])
        self.constituent_list.setRootIsDecorated(False)
        self.constituent_list.setUniformRowHeights(True)
        self.constituent_list.setMaximumHeight(110)
        self.constituent_list.header().setStretchLastSection(True)
        self.constituent_list.currentItemChanged.connect(self._constituent_chosen)
        self.constituent_list.hide()

        self.constituent_label = QLabel()
        self.constituent_label.setTextFormat(Qt.TextFormat.PlainText)
        font = self.constituent_label.font()
        font.setBold(True)
        self.constituent_label.setFont(font)
        self.constituent_label.hide()

        self.activity_list = QTreeWidget()
        self.activity_list.setHeaderLabels(["Date", "Code", "Subcode", "Text"])
        self.activity_list.setRootIsDecorated(False)
        self.activity_list.setUniformRowHeights(True)
        self.activity_list.setAlternatingRowColors(True)
        self.activity_list.header().setStretchLastSection(True)
        self.activity_list.currentItemChanged.connect(self._activity_chosen)
        self.detail_table = QTableWidget(0, 2)
        self.detail_table.setHorizontalHeaderLabels(["Field", "Value"])
        self.detail_table.verticalHeader().hide()
        self.detail_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.detail_table.setWordWrap(False)
        # One line per field, so that all of an activity's fields fit without scrolling.
        self.detail_table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.detail_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.detail_table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.detail_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.text_box = QPlainTextEdit()
        self.text_box.setReadOnly(True)
        self.text_box.setPlaceholderText("ActivityText of the selected activity")
        details = QSplitter(Qt.Orientation.Vertical)
        details.addWidget(self.detail_table)
        details.addWidget(self.text_box)
        details.setStretchFactor(0, 3)
        details.setStretchFactor(1, 1)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setObjectName("constituent_activity_splitter")
        splitter.addWidget(self.activity_list)
        splitter.addWidget(details)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        self.splitter = splitter

        self.queue_list = QTreeWidget()
        self.queue_list.setHeaderLabels(
            ["Status", "Ref", "Kind", "Created", "Sent / scheduled", "Attempts", "Last error"]
        )
        self.queue_list.setRootIsDecorated(False)
        self.queue_list.setUniformRowHeights(True)
        self.queue_list.header().setStretchLastSection(True)
        self.queue_list.itemActivated.connect(self._queue_row_activated)
        queue_tab = QWidget()
        queue_layout = QVBoxLayout(queue_tab)
        queue_layout.addWidget(self.queue_list, 1)
        hint = QLabel("Double-click a row (or press Enter) to open it in the Writeback List.")
        hint.setEnabled(False)
        queue_layout.addWidget(hint)

        self.tabs = QTabWidget()
        self.tabs.addTab(splitter, "System Activities")
        self.tabs.addTab(queue_tab, "Queue")

        search_row = QHBoxLayout()
        search_row.addWidget(QLabel("Email:"))
        search_row.addWidget(self.email_edit, 1)
        search_row.addWidget(self.search_button)
        search_row.addWidget(self.progress)
        search_row.addWidget(self.busy_label)
        message_row = QHBoxLayout()
        message_row.addWidget(self.message_label, 1)
        message_row.addWidget(self.details_button)
        layout = QVBoxLayout(self)
        layout.addLayout(search_row)
        layout.addLayout(message_row)
        layout.addWidget(self.constituent_list)
        layout.addWidget(self.constituent_label)
        layout.addWidget(self.tabs, 1)
        self._update_tab_titles()

    # -- searching ------------------------------------------------------------------------------

    @Slot()
    def _search_clicked(self) -> None:
        self.search(self.email_edit.text())

    def search(self, email: str) -> None:
        """Look ``email`` up in Personify360 and in our queue; answers to earlier searches are dropped."""
        email = email.strip()
        if self.email_edit.text().strip() != email:
            self.email_edit.setText(email)
        if not email:
            self._set_message("Type an email address to look up.")
            return
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        self._pending = 0
        self._generation += 1
        self._email = email
        self.constituents, self.activities, self.queue_rows = [], [], []
        self.constituent_list.clear()
        self.constituent_list.hide()
        self.constituent_label.hide()
        self.activity_list.clear()
        self.detail_table.setRowCount(0)
        self.text_box.clear()
        self.queue_list.clear()
        self._set_message("")
        self._update_tab_titles()
        self._submit(
            f"Looking up {email} in Personify360…",
            lookup_constituents,
            self._client_factory,
            email,
            on_done=self._constituents_found,
        )
        self._submit(
            "",
            queue_rows_for_email,
            self._factory,
            email,
            on_done=self._queue_rows_found,
        )

    def _submit(
        self, busy_text: str, fn: Callable[..., Any], *args: Any, on_done: Callable[[Any], None]
    ) -> None:
        generation = self._generation
        self._pending += 1
        if busy_text:
            self.busy_label.setText(busy_text)
        self._update_busy()

        def done(result: Any) -> None:
            if generation == self._generation:
                self._pending -= 1
                on_done(result)
                self._update_busy()

        def failed(exc: BaseException) -> None:
            if generation == self._generation:
                self._pending -= 1
                self._show_error(exc)
                self._update_busy()

        self._tasks.append(self._runner.submit(fn, *args, on_done=done, on_error=failed))

    def _update_busy(self) -> None:
        busy = self._pending > 0
        self.progress.setVisible(busy)
        self.busy_label.setVisible(busy)
        # The search stays disabled while an answer is awaited, so it is clear one is coming.
        self.search_button.setEnabled(not busy)
        self.email_edit.setReadOnly(busy)

    @property
    def busy(self) -> bool:
        return self._pending > 0

    # -- answers --------------------------------------------------------------------------------

    def _constituents_found(self, found: list[Constituent]) -> None:
        self.constituents = found
        if not found:
            self._set_message(
                f"No Personify360 constituent has the email {self._email}. "
                "The Queue tab shows what our queue holds for it."
            )
            self._update_tab_titles()
            if self.queue_rows:
                self.tabs.setCurrentIndex(1)
            return
        if len(found) > 1:
            self._set_message(
                f"{len(found)} Personify360 constituents share the email {self._email}; choose one."
            )
        else:
            self._set_message(f"One Personify360 constituent has the email {self._email}.")
        self.constituent_list.blockSignals(True)
        for c in found:
            item = QTreeWidgetItem(
                [
                    constituent_id(c),
                    c.display_name,
                    c.record_type or NONE_TEXT,
                    c.email + ("" if c.primary else " (not primary)"),
                ]
            )
            self.constituent_list.addTopLevelItem(item)
        for column in range(3):
            self.constituent_list.resizeColumnToContents(column)
        self.constituent_list.blockSignals(False)
        self.constituent_list.setVisible(len(found) > 1)
        self._select_first(self.constituent_list)

    @Slot()
    def _constituent_chosen(self) -> None:
        index = self._current_index(self.constituent_list)
        if not 0 <= index < len(self.constituents):
            return
        chosen = self.constituents[index]
        self._chosen = chosen
        self.constituent_label.setText(f"{constituent_id(chosen)}  {chosen.display_name}")
        self.constituent_label.show()
        self.activities = []
        self.activity_list.clear()
        self.detail_table.setRowCount(0)
        self.text_box.clear()
        self._update_tab_titles()
        # Choosing another constituent makes the answer for the previous one stale as well.
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        self._pending = 0
        self._generation += 1
        self._submit(
            f"Loading the activities of {constituent_id(chosen)}…",
            load_activities,
            self._client_factory,
            chosen.master_customer_id,
            chosen.sub_customer_id,
            on_done=self._activities_found,
        )
        if not self.queue_rows:
            # The queue query was cancelled with the rest; ask again (it is cheap).
            self._submit(
                "",
                queue_rows_for_email,
                self._factory,
                self._email,
                on_done=self._queue_rows_found,
            )

    def _activities_found(self, activities: list[Activity]) -> None:
        self.activities = activities
        self.activity_list.clear()
        for activity in activities:
            item = QTreeWidgetItem(
                [
                    local_text(activity.date),
                    activity.code or "",
                    activity.subcode or "",
                    first_line(activity.text),
                ]
            )
            item.setToolTip(3, activity.text)
            self.activity_list.addTopLevelItem(item)
        for column in range(3):
            self.activity_list.resizeColumnToContents(column)
        who = f"{constituent_id(self._chosen)}  {self._chosen.display_name}" if self._chosen else ""
        if activities:
            self._select_first(self.activity_list)
            self.constituent_label.setText(f"{who} — System Activities, newest first")
        else:
            self.constituent_label.setText(f"{who} — no activities in Personify360")
        self._update_tab_titles()

    @Slot()
    def _activity_chosen(self) -> None:
        index = self._current_index(self.activity_list)
        if not 0 <= index < len(self.activities):
            self.detail_table.setRowCount(0)
            self.text_box.clear()
            return
        self.text_box.setPlainText(self.activities[index].text)
        fields = ordered_fields(self.activities[index].raw)
        self.detail_table.setRowCount(len(fields))
        for row, (name, value) in enumerate(fields):
            name_item = QTableWidgetItem(name)
            font = name_item.font()
            font.setBold(True)
            name_item.setFont(font)
            name_item.setTextAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
            # One line per field keeps the table scannable; the whole text is in the box below.
            value_item = QTableWidgetItem(first_line(field_value(value)))
            value_item.setTextAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
            value_item.setToolTip(str(value))
            self.detail_table.setItem(row, 0, name_item)
            self.detail_table.setItem(row, 1, value_item)

    def _queue_rows_found(self, rows: list[WritebackRow]) -> None:
        self.queue_rows = rows
        self.queue_list.clear()
        for row in rows:
            when = row.sent_at or row.scheduled_for
            item = QTreeWidgetItem(
                [
                    status_text(row.status),
                    row.ref,
                    row.kind.label,
                    local_text(row.created_at),
                    local_text(when) if when else NONE_TEXT,
                    f"{row.attempts}/{row.max_attempts}",
                    first_line(row.last_error or ""),
                ]
            )
            tint = status_tint(row.status)
            item.setBackground(0, QBrush(tint))
            item.setForeground(0, QBrush(text_color_on(tint)))
            item.setToolTip(6, row.last_error or "")
            item.setData(1, Qt.ItemDataRole.UserRole, row.ref)
            self.queue_list.addTopLevelItem(item)
        for column in range(6):
            self.queue_list.resizeColumnToContents(column)
        self._update_tab_titles()

    @Slot(QTreeWidgetItem, int)
    def _queue_row_activated(self, item: QTreeWidgetItem, _column: int) -> None:
        self.open_ref.emit(str(item.data(1, Qt.ItemDataRole.UserRole)))

    @staticmethod
    def _select_first(tree: QTreeWidget) -> None:
        first = tree.topLevelItem(0)
        if first is not None:
            tree.setCurrentItem(first)

    @staticmethod
    def _current_index(tree: QTreeWidget) -> int:
        item = tree.currentItem()
        return -1 if item is None else tree.indexOfTopLevelItem(item)

    # -- messages -------------------------------------------------------------------------------

    def _update_tab_titles(self) -> None:
        self.tabs.setTabText(0, f"System Activities ({len(self.activities)})")
        self.tabs.setTabText(1, f"Queue ({len(self.queue_rows)})")

    def _set_message(self, text: str, *, error: bool = False) -> None:
        self.message_label.setText(text)
        set_tone(self.message_label, "error" if error else None)
        self.details_button.setVisible(error)

    def _show_error(self, exc: BaseException) -> None:
        message, self._error_details = errors.describe_exception(exc)
        self._set_message(message, error=True)

    @property
    def message(self) -> str:
        """What the viewer tells the user right now (for the status bar and tests)."""
        return self.message_label.text()

    @Slot()
    def _show_error_details(self) -> None:
        errors.show_error(self, "Constituent lookup", self.message_label.text(), self._error_details)


class ConstituentDialog(QDialog):
    """The viewer in a window of its own; double-clicking a queue row closes it with that reference.

    Signals:
        open_ref(str): forwarded from the viewer.
    """

    open_ref = Signal(str)

    def __init__(
        self,
        factory: sessionmaker[Session],
        runner: TaskRunner,
        client_factory: ClientFactory,
        parent: QWidget | None = None,
        email: str | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Constituent activity (CRM360 System Activities)")
        self.resize(1000, 640)
        self.viewer = ConstituentViewer(factory, runner, client_factory, self)
        self.chosen_ref: str | None = None
        self.viewer.open_ref.connect(self._open_ref)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        close = buttons.button(QDialogButtonBox.StandardButton.Close)
        close.setAutoDefault(False)
        close.setShortcut(QKeySequence.StandardKey.Close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.viewer, 1)
        layout.addWidget(buttons)
        if email:
            self.viewer.search(email)

    @Slot(str)
    def _open_ref(self, ref: str) -> None:
        self.chosen_ref = ref
        self.open_ref.emit(ref)
        self.accept()
