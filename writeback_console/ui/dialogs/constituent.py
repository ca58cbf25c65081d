"""The Constituent activity viewer: CRM360 System Activities for one email, beside our queue rows for it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from PySide6.QtCore import QEvent, QMimeData, Qt, Signal, Slot
from PySide6.QtGui import QBrush, QKeySequence, QTextOption
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

from writeback_console import lookup
from writeback_console.domain import Status
from writeback_console.personify import odata
from writeback_console.personify.values import Activity, Constituent
from writeback_console.store import listing, people
from writeback_console.store.engine import read_session
from writeback_console.store.people import PersonRow
from writeback_console.store.rows import NotFound
from writeback_console.ui.dialogs import TaskGroup, errors
from writeback_console.ui.status_pill import text_color_on
from writeback_console.ui.status_style import NONE_TEXT, local_text, status_text, status_tint
from writeback_console.ui.tasks import Task, TaskRunner
from writeback_console.ui.theme import set_tone

ClientFactory = lookup.ClientFactory
#: The Queue tab's column with the person's own part of a mailing's row.
RECIPIENT_COLUMN = 7
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


def queue_row_ref(factory: sessionmaker[Session], ref: str) -> str | None:
    """The reference of the queue row an activity's ``[ref …]`` names (a recipient's reference leads
    to the mailing's row), or None when no row of this queue carries it."""
    with read_session(factory) as session:
        try:
            return listing.get_writeback(session, ref).ref
        except NotFound:
            return None


# --- formatting ----------------------------------------------------------------------------------

#: Shown in place of the space and hyphen of ``[ref WB-…]``, so that a wrapped line never splits a
#: reference; copying gives the ordinary characters back.
_NO_BREAK = str.maketrans({" ": "\u00a0", "-": "\u2011"})
_BREAKABLE = str.maketrans({"\u00a0": " ", "\u2011": "-"})
# Qt's toPlainText gives the no-break space back as a space already.
_UNBROKEN_MARKER = re.compile("\\[ref[\u00a0 ]WB\u2011[A-Z0-9]+\\]", re.IGNORECASE)


def unbroken_refs(text: str) -> str:
    """``text`` with every ``[ref WB-…]`` written so that no line break can fall inside it."""
    return lookup.REF_MARKER.sub(lambda m: m.group(0).translate(_NO_BREAK), text)


def plain_refs(text: str) -> str:
    """The inverse of :func:`unbroken_refs`, for what leaves the console (the clipboard)."""
    return _UNBROKEN_MARKER.sub(lambda m: m.group(0).translate(_BREAKABLE), text)


class ActivityTextBox(QPlainTextEdit):
    """The whole ActivityText, wrapped, with its reference kept on one line; copies the true text."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # Only between words: in a box narrower than the reference it scrolls rather than splits it.
        self.setWordWrapMode(QTextOption.WrapMode.WordWrap)

    def set_activity_text(self, text: str) -> None:
        self.setPlainText(unbroken_refs(text))

    def activity_text(self) -> str:
        """The text shown, as Personify360 holds it."""
        return plain_refs(self.toPlainText())

    def createMimeDataFromSelection(self) -> QMimeData:
        data = QMimeData()
        data.setText(plain_refs(self.textCursor().selectedText().replace("\u2029", "\n")))
        return data


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


def recipient_text(person_row: PersonRow) -> str:
    """The person's own part of a mailing's row: their recipient reference and how it went."""
    return people.recipient_outcome(person_row, local_text)


# --- the viewer ----------------------------------------------------------------------------------


def _tint(item: QTreeWidgetItem, status: Status) -> None:
    """A Queue tab row's status cell in the status's tint of the palette in use."""
    tint = status_tint(status)
    item.setBackground(0, QBrush(tint))
    item.setForeground(0, QBrush(text_color_on(tint)))


class ConstituentViewer(QWidget):
    """Search by email → constituent(s) → activities newest first and every field of one; plus queue rows.

    Signals:
        open_ref(str): show this queue row in the Writeback List (a queue row double-clicked, or the
            row an activity's ``[ref …]`` names).
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
        self.queue_rows: list[PersonRow] = []

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
        # The reference has a column of its own, so that it is never cut or wrapped with the text.
        self.activity_list.setHeaderLabels(["Date", "Code", "Subcode", "Ref", "Text"])
        self.activity_list.setRootIsDecorated(False)
        self.activity_list.setUniformRowHeights(True)
        self.activity_list.setAlternatingRowColors(True)
        self.activity_list.header().setStretchLastSection(True)
        self.activity_list.currentItemChanged.connect(self._activity_chosen)
        self.activity_list.itemActivated.connect(self._activity_activated)
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
        self.text_box = ActivityTextBox()
        self.text_box.setReadOnly(True)
        self.text_box.setPlaceholderText("ActivityText of the selected activity")
        self.open_queue_row_button = QPushButton("Open its queue row")
        self.open_queue_row_button.setToolTip(
            "Show the writeback that wrote this activity in the Writeback List (double-click or Enter "
            "on the activity does the same)"
        )
        self.open_queue_row_button.setEnabled(False)
        self.open_queue_row_button.clicked.connect(self.open_activity_ref)
        text_pane = QWidget()
        text_layout = QVBoxLayout(text_pane)
        text_layout.setContentsMargins(0, 0, 0, 0)
        text_layout.addWidget(self.text_box, 1)
        open_row = QHBoxLayout()
        open_row.addStretch(1)
        open_row.addWidget(self.open_queue_row_button)
        text_layout.addLayout(open_row)
        details = QSplitter(Qt.Orientation.Vertical)
        details.addWidget(self.detail_table)
        details.addWidget(text_pane)
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
            ["Status", "Ref", "Kind", "Created", "Sent / scheduled", "Attempts", "Last error", "As recipient"]
        )
        self.queue_list.setRootIsDecorated(False)
        self.queue_list.setUniformRowHeights(True)
        self.queue_list.header().setStretchLastSection(True)
        self.queue_list.itemActivated.connect(self._queue_row_activated)
        queue_tab = QWidget()
        queue_layout = QVBoxLayout(queue_tab)
        queue_layout.addWidget(self.queue_list, 1)
        hint = QLabel(
            "The rows for this email, and the mailing activity of every mailing sent to it (As recipient: "
            "the person's own activity of that mailing). Double-click a row (or press Enter) to open it "
            "in the Writeback List."
        )
        hint.setWordWrap(True)
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
        try:
            email = lookup.check_email(email)
        except lookup.NotAnEmail as exc:
            # Asking anyway would answer "nobody has it", which reads as "this person does not exist".
            self._clear()
            self._set_message(str(exc), error=bool(email))
            # What is wrong is all there is to say: there are no technical details to show.
            self.details_button.hide()
            return
        self._clear()
        self._email = email
        self._set_message("")
        self._submit(
            f"Looking up {email} in Personify360…",
            lookup.find_constituents,
            self._client_factory,
            email,
            on_done=self._constituents_found,
        )
        self._submit(
            "",
            lookup.queue_rows,
            self._factory,
            email,
            on_done=self._queue_rows_found,
        )

    def _clear(self) -> None:
        """Forget the previous search: its answers still on their way are dropped."""
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        self._pending = 0
        self._generation += 1
        self._update_busy()
        self._email = ""
        self.constituents, self.activities, self.queue_rows = [], [], []
        self._chosen = None
        self.constituent_list.clear()
        self.constituent_list.hide()
        self.constituent_label.hide()
        self.activity_list.clear()
        self.detail_table.setRowCount(0)
        self.text_box.clear()
        self.open_queue_row_button.setEnabled(False)
        self.queue_list.clear()
        self._update_tab_titles()

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
            lookup.load_activities,
            self._client_factory,
            chosen.master_customer_id,
            chosen.sub_customer_id,
            on_done=self._activities_found,
        )
        if not self.queue_rows:
            # The queue query was cancelled with the rest; ask again (it is cheap).
            self._submit(
                "",
                lookup.queue_rows,
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
                    lookup.ref_in(activity.text) or "",
                    first_line(activity.text),
                ]
            )
            item.setToolTip(4, unbroken_refs(activity.text))
            self.activity_list.addTopLevelItem(item)
        for column in range(4):
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
            self.open_queue_row_button.setEnabled(False)
            return
        self.text_box.set_activity_text(self.activities[index].text)
        self.open_queue_row_button.setEnabled(lookup.ref_in(self.activities[index].text) is not None)
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
            value_item.setToolTip(unbroken_refs(str(value)))
            self.detail_table.setItem(row, 0, name_item)
            self.detail_table.setItem(row, 1, value_item)

    def changeEvent(self, event: QEvent) -> None:
        # The status cells carry colours of the palette they were filled in: they take the new one's.
        if event.type() == QEvent.Type.PaletteChange:
            for n, person_row in enumerate(self.queue_rows):
                item = self.queue_list.topLevelItem(n)
                if item is not None:
                    _tint(item, person_row.row.status)
        super().changeEvent(event)

    def _queue_rows_found(self, rows: list[PersonRow]) -> None:
        self.queue_rows = rows
        self.queue_list.clear()
        for person_row in rows:
            row = person_row.row
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
                    recipient_text(person_row),
                ]
            )
            _tint(item, row.status)
            item.setToolTip(6, row.last_error or "")
            item.setData(1, Qt.ItemDataRole.UserRole, row.ref)
            recipient = person_row.recipient
            if recipient is not None and recipient.last_error:
                item.setToolTip(RECIPIENT_COLUMN, recipient.last_error)
            self.queue_list.addTopLevelItem(item)
        for column in range(RECIPIENT_COLUMN + 1):
            self.queue_list.resizeColumnToContents(column)
        self._update_tab_titles()

    @Slot(QTreeWidgetItem, int)
    def _queue_row_activated(self, item: QTreeWidgetItem, _column: int) -> None:
        self.open_ref.emit(str(item.data(1, Qt.ItemDataRole.UserRole)))

    @Slot(QTreeWidgetItem, int)
    def _activity_activated(self, _item: QTreeWidgetItem, _column: int) -> None:
        self.open_activity_ref()

    @Slot()
    def open_activity_ref(self) -> None:
        """Show the queue row that wrote the selected activity, found by the ``[ref …]`` it ends with."""
        index = self._current_index(self.activity_list)
        if not 0 <= index < len(self.activities):
            return
        ref = lookup.ref_in(self.activities[index].text)
        if ref is None:
            self._set_message(
                "This activity carries no [ref WB-…]: it was not written by the writeback queue."
            )
            return
        # Known rows need no query; a recipient's reference of a mailing not listed does.
        for person_row in self.queue_rows:
            if ref in person_row.refs:
                self.open_ref.emit(person_row.row.ref)
                return
        generation = self._generation

        def found(queue_ref: str | None) -> None:
            if generation != self._generation:
                return
            if queue_ref is None:
                self._set_message(
                    unbroken_refs(
                        f"No row of this queue carries [ref {ref}]: it was written from another queue "
                        "database, or its row is gone."
                    )
                )
            else:
                self.open_ref.emit(queue_ref)

        self._tasks.append(
            self._runner.submit(queue_row_ref, self._factory, ref, on_done=found, on_error=self._show_error)
        )

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
