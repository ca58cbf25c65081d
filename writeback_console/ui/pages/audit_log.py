"""The Audit log page: every recorded action, newest first and keyset-paged, filtered by person, action,
dates and reference; an entry shows its filter, detail and rows, and a row opens in the Writeback List."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    Qt,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session, sessionmaker

from writeback_console.domain import AuditAction
from writeback_console.store import audit_log
from writeback_console.store.audit_log import AuditEntry, AuditFilter, AuditPage, Cursor, EventRowsPage
from writeback_console.store.engine import QueryStop, read_session
from writeback_console.ui.filter_bar import TEXT_THROTTLE_MS, day_range_edits, local_midnight_utc, to_date
from writeback_console.ui.resources import icon
from writeback_console.ui.status_style import local_text
from writeback_console.ui.tasks import Task, TaskGroup, TaskRunner

Factory = sessionmaker[Session]
Index = QModelIndex | QPersistentModelIndex
COLUMNS = ("When", "Who", "Action", "Rows", "Filter / detail")
ALL_ACTIONS_LABEL = "All actions"
#: Entries read per page of the table, and rows of one entry per page of its list.
PAGE_SIZE = 100
ROWS_PAGE_SIZE = 200
ENTRY_ROLE = Qt.ItemDataRole.UserRole + 1
REF_ROLE = Qt.ItemDataRole.UserRole + 2


def read_page(
    factory: Factory, flt: AuditFilter, after: Cursor | None, limit: int, stop: QueryStop | None = None
) -> AuditPage:
    """One page of the log; runs on a worker thread."""
    with read_session(factory, stop) as session:
        return audit_log.audit_page(session, flt, after=after, limit=limit)


def read_rows(factory: Factory, event_id: int, after: int | None, limit: int) -> EventRowsPage:
    """One page of an entry's rows; runs on a worker thread."""
    with read_session(factory) as session:
        return audit_log.event_rows(session, event_id, after=after, limit=limit)


class AuditTableModel(QAbstractTableModel):
    """The entries of the current filter, read a page at a time as the view scrolls (``fetchMore``).

    A new filter bumps a generation; a page that arrives for an older one is dropped.

    Signals:
        loading_changed(bool): a query started or ended.
        first_page_loaded(): the first page of the current filter is in.
        load_failed(str): a query failed; the text says why.
    """

    loading_changed = Signal(bool)
    first_page_loaded = Signal()
    load_failed = Signal(str)

    def __init__(self, factory: Factory, runner: TaskRunner, page_size: int = PAGE_SIZE) -> None:
        super().__init__()
        self._factory = factory
        self._tasks = TaskGroup(self, runner)
        self.page_size = page_size
        self.filter = AuditFilter()
        self.entries: list[AuditEntry] = []
        self._cursor: Cursor | None = None
        self._at_end = True
        self._failed = False
        self._generation = 0
        self._pending: Task | None = None

    @property
    def loading(self) -> bool:
        return self._pending is not None

    def set_filter(self, flt: AuditFilter) -> None:
        """Show the entries of ``flt`` from the newest on (older pages come as the view scrolls)."""
        self.filter = flt
        self._generation += 1
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self.beginResetModel()
        self.entries = []
        self._cursor = None
        self._at_end = False
        self._failed = False
        self.endResetModel()
        self._fetch()

    def reload(self) -> None:
        self.set_filter(self.filter)

    def _fetch(self) -> None:
        generation = self._generation
        stop = QueryStop()
        self._pending = self._tasks.submit(
            read_page,
            self._factory,
            self.filter,
            self._cursor,
            self.page_size,
            stop,
            stop=stop,
            on_done=lambda page: self._append(generation, page),
            on_error=lambda error: self._error(generation, error),
        )
        self.loading_changed.emit(True)

    def _append(self, generation: int, page: AuditPage) -> None:
        if generation != self._generation:
            return
        self._pending = None
        first = not self.entries
        if page.entries:
            start = len(self.entries)
            self.beginInsertRows(QModelIndex(), start, start + len(page.entries) - 1)
            self.entries.extend(page.entries)
            self.endInsertRows()
        self._cursor = page.next_cursor
        self._at_end = page.next_cursor is None
        self.loading_changed.emit(False)
        if first:
            self.first_page_loaded.emit()

    def _error(self, generation: int, error: BaseException) -> None:
        if generation != self._generation:
            return
        self._pending = None
        # fetchMore stops asking; the next filter or a reload tries afresh.
        self._failed = True
        self.loading_changed.emit(False)
        self.load_failed.emit(f"The audit log could not be read: {error}")

    # --- Qt's model -------------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.entries)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.entries):
            return None
        entry = self.entries[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return cell_text(entry, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == 0:
                return entry.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            if column == 3 and entry.first_refs:
                more = (
                    f"\n… and {entry.row_count - len(entry.first_refs):,} more"
                    if entry.row_count > len(entry.first_refs)
                    else ""
                )
                return "\n".join(entry.first_refs) + more
            if column == 4:
                return cell_text(entry, column) or None
        if role == Qt.ItemDataRole.TextAlignmentRole and column == 3:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == ENTRY_ROLE:
            return entry.id
        return None

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008 - Qt's signature
        if parent.isValid():
            return False
        return not self._at_end and not self._failed and self._pending is None and bool(self.entries)

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008 - Qt's signature
        if self.canFetchMore(parent):
            self._fetch()


def cell_text(entry: AuditEntry, column: int) -> str:
    if column == 0:
        return local_text(entry.at)
    if column == 1:
        return entry.actor
    if column == 2:
        return audit_log.action_label(entry.action)
    if column == 3:
        return f"{entry.row_count:,}" if entry.row_count or entry.rows_listed else "—"
    words = audit_log.entry_words(entry)
    if entry.first_refs:
        more = ", …" if entry.row_count > len(entry.first_refs) else ""
        refs = f"{', '.join(entry.first_refs)}{more}"
        return f"{words} — {refs}" if words else refs
    return words


@dataclass(frozen=True, slots=True)
class _RowsQuery:
    event_id: int
    generation: int


class EntryPane(QWidget):
    """One entry in full: when (local and UTC), who and as which database user, the filter and detail
    in words, and every row it touched in a list read a page at a time.

    Signals:
        open_ref(str): show this writeback in the Writeback List.
    """

    open_ref = Signal(str)

    def __init__(self, factory: Factory, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("auditEntry")
        self._factory = factory
        self._tasks = TaskGroup(self, runner)
        self.entry: AuditEntry | None = None
        self._after: int | None = None
        self._generation = 0
        self._task: Task | None = None

        self.when = QLabel()
        self.who = QLabel()
        self.action = QLabel()
        self.filter_text = QLabel()
        self.detail_text = QLabel()
        for label in (self.when, self.who, self.action, self.filter_text, self.detail_text):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("When:", self.when)
        form.addRow("Who:", self.who)
        form.addRow("Action:", self.action)
        form.addRow("Filter:", self.filter_text)
        form.addRow("Detail:", self.detail_text)

        self.rows_title = QLabel("Rows")
        self.rows_title.setWordWrap(True)
        self.rows = QListWidget()
        self.rows.setObjectName("auditRows")
        self.rows.setUniformItemSizes(True)
        self.rows.itemActivated.connect(self._activated)
        self.rows.currentItemChanged.connect(self._current_changed)
        self.more_button = QPushButton("Show more rows")
        self.more_button.clicked.connect(self._more)
        self.open_button = QPushButton(icon("list"), "Open in the list")
        self.open_button.setToolTip(
            "Show the chosen writeback in the Writeback List; Enter or a double click on a row does it too"
        )
        self.open_button.clicked.connect(self._open_current)
        buttons = QHBoxLayout()
        buttons.addWidget(self.more_button)
        buttons.addStretch(1)
        buttons.addWidget(self.open_button)

        right = QVBoxLayout()
        right.addWidget(self.rows_title)
        right.addWidget(self.rows, 1)
        right.addLayout(buttons)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.addLayout(form, 3)
        layout.addLayout(right, 2)
        self.show_entry(None)

    def show_entry(self, entry: AuditEntry | None) -> None:
        self.entry = entry
        self._generation += 1
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._after = None
        self.rows.clear()
        self.more_button.setVisible(False)
        self.open_button.setEnabled(False)
        if entry is None:
            for label in (self.when, self.who, self.action, self.filter_text, self.detail_text):
                label.setText("")
            self.when.setText("Choose an entry to see its filter, detail and rows.")
            self.rows.setVisible(False)
            self.open_button.setVisible(False)
            self.rows_title.setText("Rows")
            return
        self.when.setText(
            f"{local_text(entry.at, seconds=True)} ({entry.at.strftime('%Y-%m-%d %H:%M:%S')} UTC)"
        )
        self.who.setText(entry.actor + (f" (database user {entry.db_user})" if entry.db_user else ""))
        self.action.setText(audit_log.action_label(entry.action))
        self.filter_text.setText(audit_log.filter_text(entry) or "—")
        self.detail_text.setText(audit_log.detail_text(entry) or "—")
        self.rows.setVisible(entry.rows_listed)
        self.open_button.setVisible(entry.rows_listed)
        if entry.rows_listed:
            self.rows_title.setText(
                f"Rows ({entry.row_count:,}); Enter or a double click opens one in the list"
            )
            self._fetch()
        elif entry.row_count:
            self.rows_title.setText(
                f"Rows ({entry.row_count:,}): an {audit_log.action_label(entry.action).lower()} counts its "
                "rows without listing them one by one"
            )
        else:
            self.rows_title.setText("Rows: none (this action changed no writeback)")

    def _fetch(self) -> None:
        if self.entry is None:
            return
        query = _RowsQuery(self.entry.id, self._generation)
        self.more_button.setEnabled(False)
        self._task = self._tasks.submit(
            read_rows,
            self._factory,
            self.entry.id,
            self._after,
            ROWS_PAGE_SIZE,
            on_done=lambda page: self._append(query, page),
            on_error=lambda error: self._failed(query, error),
        )

    def _append(self, query: _RowsQuery, page: EventRowsPage) -> None:
        if query.generation != self._generation:
            return
        self._task = None
        for row in page.rows:
            text = row.ref if row.in_queue else f"{row.ref} (pruned since)"
            item = QListWidgetItem(text)
            item.setData(REF_ROLE, row.ref if row.in_queue else None)
            if not row.in_queue:
                item.setToolTip("Retention has deleted this writeback; its audit entries are kept")
            self.rows.addItem(item)
        self._after = page.next_after
        self.more_button.setVisible(page.next_after is not None)
        self.more_button.setEnabled(True)
        if self.rows.currentItem() is None and self.rows.count():
            self.rows.setCurrentRow(0)

    def _failed(self, query: _RowsQuery, error: BaseException) -> None:
        if query.generation != self._generation:
            return
        self._task = None
        self.rows_title.setText(f"The rows could not be read: {error}")

    @Slot()
    def _more(self) -> None:
        if self._after is not None and self._task is None:
            self._fetch()

    @Slot(QListWidgetItem, QListWidgetItem)
    def _current_changed(self, current: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        self.open_button.setEnabled(current is not None and isinstance(current.data(REF_ROLE), str))

    @Slot(QListWidgetItem)
    def _activated(self, item: QListWidgetItem) -> None:
        ref = item.data(REF_ROLE)
        if isinstance(ref, str):
            self.open_ref.emit(ref)

    @Slot()
    def _open_current(self) -> None:
        item = self.rows.currentItem()
        if item is not None:
            self._activated(item)


class AuditLogPage(QWidget):
    """Who did what, when, with which filter, to which rows.

    Signals:
        open_ref(str): show this writeback in the Writeback List.
    """

    open_ref = Signal(str)

    def __init__(self, factory: Factory, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("auditLogPage")
        self.model = AuditTableModel(factory, runner)
        self._started = False

        title = QLabel("Audit log")
        title.setObjectName("pageTitle")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        font.setBold(True)
        title.setFont(font)
        self.refresh_button = QPushButton(icon("refresh"), "Refresh")
        self.refresh_button.clicked.connect(self.refresh)

        self.person = QLineEdit()
        self.person.setObjectName("auditPerson")
        self.person.setPlaceholderText("Person")
        self.person.setToolTip("Who acted: the start of the name, any case")
        self.person.setClearButtonEnabled(True)
        self.action = QComboBox()
        self.action.setObjectName("auditAction")
        self.action.setToolTip("Only entries of this action")
        self.action.addItem(ALL_ACTIONS_LABEL, None)
        for action in sorted(AuditAction, key=audit_log.action_label):
            self.action.addItem(audit_log.action_label(action), action.value)
        self.action.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.from_check, self.from_date, self.to_check, self.to_date = day_range_edits(
            "From", self._filter_changed, self._filter_changed
        )
        self.from_check.setToolTip("Only entries on or after this day (local time)")
        self.to_check.setToolTip("Only entries on or before this day (local time)")
        self.ref = QLineEdit()
        self.ref.setObjectName("auditRef")
        self.ref.setPlaceholderText("Reference")
        self.ref.setToolTip("Only entries that touched this writeback (also one pruned since)")
        self.ref.setClearButtonEnabled(True)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Show every entry")
        self.clear_button.clicked.connect(self.clear_filters)

        self.text_throttle = QTimer(self)
        self.text_throttle.setObjectName("audit_text_throttle")
        self.text_throttle.setSingleShot(True)
        self.text_throttle.setInterval(TEXT_THROTTLE_MS)
        self.text_throttle.timeout.connect(self.apply_filters)
        self.person.textEdited.connect(self._text_edited)
        self.ref.textEdited.connect(self._text_edited)
        self.person.returnPressed.connect(self.apply_filters)
        self.ref.returnPressed.connect(self.apply_filters)
        self.action.currentIndexChanged.connect(self._filter_changed)

        self.table = QTableView()
        self.table.setObjectName("auditTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.verticalHeader().hide()
        # Fixed row height: rows are never measured one by one.
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        for column, width in enumerate((125, 130, 120, 60)):
            header.resizeSection(column, width)
        self.table.selectionModel().currentRowChanged.connect(self._current_changed)
        self.table.activated.connect(self._entry_activated)

        self.empty = QLabel("No audit entry matches the filter.")
        self.empty.setObjectName("emptyHint")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.table_stack = QStackedWidget()
        self.table_stack.addWidget(self.table)
        self.table_stack.addWidget(self.empty)

        self.entry_pane = EntryPane(factory, runner)
        self.entry_pane.open_ref.connect(self.open_ref)

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("auditSplitter")
        self.splitter.addWidget(self.table_stack)
        self.splitter.addWidget(self.entry_pane)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)

        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.model.loading_changed.connect(self._loading_changed)
        self.model.first_page_loaded.connect(self._first_page_loaded)
        self.model.load_failed.connect(self._load_failed)

        top = QHBoxLayout()
        top.addWidget(title)
        top.addStretch(1)
        top.addWidget(self.refresh_button)
        filters = QHBoxLayout()
        filters.addWidget(self.person, 2)
        filters.addWidget(self.action)
        filters.addWidget(self.from_check)
        filters.addWidget(self.from_date)
        filters.addWidget(self.to_check)
        filters.addWidget(self.to_date)
        filters.addWidget(self.ref, 2)
        filters.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.addLayout(top)
        layout.addLayout(filters)
        layout.addWidget(self.note)
        layout.addWidget(self.splitter, 1)

    def sizeHint(self) -> QSize:
        return QSize(900, 600)

    # --- filters ---------------------------------------------------------------------------------

    def build_filter(self) -> AuditFilter:
        value = self.action.currentData()
        return AuditFilter(
            actor=self.person.text().strip() or None,
            actions=frozenset({AuditAction(value)}) if isinstance(value, str) else frozenset(),
            since=local_midnight_utc(to_date(self.from_date.date())) if self.from_check.isChecked() else None,
            until=local_midnight_utc(to_date(self.to_date.date()) + timedelta(days=1))
            if self.to_check.isChecked()
            else None,
            ref=self.ref.text().strip() or None,
        )

    @Slot()
    def apply_filters(self) -> None:
        self.text_throttle.stop()
        self._started = True
        self.entry_pane.show_entry(None)
        self.model.set_filter(self.build_filter())

    @Slot()
    def refresh(self) -> None:
        """Read the log again from the newest entry (the page opened, or Refresh)."""
        self.apply_filters()

    def start(self) -> None:
        """The first read, when the page is first shown."""
        if not self._started:
            self.apply_filters()

    @Slot()
    def clear_filters(self) -> None:
        for widget in (self.person, self.ref, self.action, self.from_check, self.to_check):
            widget.blockSignals(True)
        self.person.clear()
        self.ref.clear()
        self.action.setCurrentIndex(0)
        self.from_check.setChecked(False)
        self.to_check.setChecked(False)
        for widget in (self.person, self.ref, self.action, self.from_check, self.to_check):
            widget.blockSignals(False)
        self.from_date.setEnabled(False)
        self.to_date.setEnabled(False)
        self.apply_filters()

    def set_action(self, action: AuditAction | None) -> None:
        index = self.action.findData(action.value if action is not None else None)
        self.action.setCurrentIndex(max(index, 0))

    @Slot(str)
    def _text_edited(self, _text: str) -> None:
        self.text_throttle.start()

    @Slot()
    def _filter_changed(self) -> None:
        self.apply_filters()

    # --- the table -------------------------------------------------------------------------------

    @Slot(bool)
    def _loading_changed(self, loading: bool) -> None:
        if loading and not self.model.entries:
            self.note.setText("Reading the audit log…")
        elif not loading:
            self._update_note()

    def _update_note(self) -> None:
        n = len(self.model.entries)
        more = self.model.canFetchMore()
        if n == 0:
            self.note.setText("")
        else:
            shown = f"{n:,} entr{'y' if n == 1 else 'ies'}" + (", more as you scroll" if more else "")
            self.note.setText(f"{shown}, newest first. Select one to see its rows.")
        self.table_stack.setCurrentWidget(self.empty if n == 0 else self.table)

    @Slot()
    def _first_page_loaded(self) -> None:
        self._update_note()
        if self.model.entries:
            self.table.selectRow(0)

    @Slot(str)
    def _load_failed(self, message: str) -> None:
        self.note.setText(message)

    @Slot(QModelIndex, QModelIndex)
    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        row = current.row()
        self.entry_pane.show_entry(self.model.entries[row] if 0 <= row < len(self.model.entries) else None)

    @Slot(QModelIndex)
    def _entry_activated(self, index: QModelIndex) -> None:
        """Enter or a double click on an entry with one row opens that row; otherwise its rows' list."""
        entry = self.model.entries[index.row()] if 0 <= index.row() < len(self.model.entries) else None
        if entry is not None and entry.row_count == 1 and len(entry.first_refs) == 1:
            self.open_ref.emit(entry.first_refs[0])
        elif self.entry_pane.rows.count():
            self.entry_pane.rows.setFocus()

    def current_entry(self) -> AuditEntry | None:
        return self.entry_pane.entry
