"""The Writeback List screen: filter bar, paged table and detail pane, with its actions and context menu,
and "Select all N matching" to act on every row of the filter, not only those loaded."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from PySide6.QtCore import QByteArray, QItemSelection, QItemSelectionModel, QPoint, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QSplitter,
    QStyleOptionHeader,
    QTableView,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session, sessionmaker

from writeback_console.domain import (
    DEFAULT_LEASE_SECONDS,
    Kind,
    Status,
    discard_decision,
    manual_retry_decision,
    normalize_ref,
)
from writeback_console.error_groups import NO_MESSAGE, error_reason
from writeback_console.store import listing
from writeback_console.store.changes import ChangeFeed
from writeback_console.store.engine import QueryStop, read_session
from writeback_console.store.listing import StatusCounts, WritebackFilter
from writeback_console.store.permissions import Action
from writeback_console.store.rows import WritebackRow
from writeback_console.ui import keyboard
from writeback_console.ui.detail_pane import DetailPane
from writeback_console.ui.dialogs import count_text, discard, matching
from writeback_console.ui.dialogs.schedule import MOVABLE
from writeback_console.ui.filter_bar import FilterBar
from writeback_console.ui.permissions import PermissionGate
from writeback_console.ui.status_pill import StatusPillDelegate
from writeback_console.ui.tasks import Task, TaskGroup, TaskRunner
from writeback_console.ui.writeback_model import (
    COLUMNS,
    PILL_ROLE,
    ROW_ROLE,
    SLOW_QUERY_MS,
    Column,
    ListQuery,
    WritebackTableModel,
    column_for_sort,
    fitted_width,
)

Factory = sessionmaker[Session]
#: Marks the saved column layout of this column order; a layout saved for another order is not restored.
HEADER_STATE_VERSION = b"columns-2:"
#: How often the list takes the change feed's news (ms): changes show within about two seconds.
LIVE_INTERVAL_MS = 1000


def count_statuses(
    factory: Factory, flt: WritebackFilter, stop: QueryStop | None = None, exact: bool = False
) -> StatusCounts:
    """Rows per status under ``flt`` without its status choice, up to the cap unless ``exact``; runs on
    a worker thread, and ``stop`` stops it when a newer filter replaces it."""
    with read_session(factory, stop) as session:
        if exact:
            return StatusCounts(listing.count_by_status(session, flt))
        return listing.bounded_counts(session, flt)


def arrow_for(order: Qt.SortOrder) -> QStyleOptionHeader.SortIndicator:
    """The arrow a sorted column shows: up for ascending (smallest first), down for descending."""
    if order == Qt.SortOrder.AscendingOrder:
        return QStyleOptionHeader.SortIndicator.SortUp
    return QStyleOptionHeader.SortIndicator.SortDown


class SortHeader(QHeaderView):
    """The list's header, with the sort arrow pointing the way the rows run.

    QHeaderView asks the style for the "down" arrow when sorting ascending, and Fusion and the Windows
    styles draw it pointing down, so the newest-first list showed an arrow pointing up. Each section's
    style option gets the arrow the header's own order calls for (``arrow_for``).
    """

    def initStyleOptionForIndex(self, option: QStyleOptionHeader, logicalIndex: int) -> None:
        super().initStyleOptionForIndex(option, logicalIndex)
        if option.sortIndicator != QStyleOptionHeader.SortIndicator.None_:
            option.sortIndicator = arrow_for(self.sortIndicatorOrder())


class WritebackTable(QTableView):
    """The table of the Writeback List: fixed row height, pill delegate, selection kept across reloads.

    Signals:
        selected_ids_changed(list): the ids of the selected rows, in table order.
    """

    selected_ids_changed = Signal(list)

    def __init__(self, model: WritebackTableModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("writebackTable")
        self.setModel(model)
        self._model = model
        self._kept_ids: list[int] = []
        self._kept_current: int | None = None
        self._kept_scroll = 0

        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.setItemDelegateForColumn(Column.STATUS, StatusPillDelegate(PILL_ROLE, self))

        # Fixed height: the view never measures rows, so a million-row model costs nothing to lay out.
        rows = self.verticalHeader()
        rows.setVisible(False)
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(self.fontMetrics().height() + 12)

        header = SortHeader(Qt.Orientation.Horizontal, self)
        header.setSectionsClickable(True)
        self.setHorizontalHeader(header)
        header.setSectionsMovable(True)
        header.setStretchLastSection(True)
        header.setHighlightSections(False)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        for column, spec in COLUMNS.items():
            self.setColumnWidth(column, fitted_width(spec, self.fontMetrics()))
        header.setSortIndicator(Column.CREATED, Qt.SortOrder.DescendingOrder)
        self._sorted_by = (int(Column.CREATED), Qt.SortOrder.DescendingOrder)
        self.setSortingEnabled(True)
        header.sortIndicatorChanged.connect(self._sort_indicator_changed)

        model.modelAboutToBeReset.connect(self._keep_selection)
        model.first_page_loaded.connect(self._restore_selection)
        self.selectionModel().selectionChanged.connect(self._selection_changed)

    def selected_ids(self) -> list[int]:
        rows = sorted(index.row() for index in self.selectionModel().selectedRows())
        ids = []
        for n in rows:
            row = self._model.row_at(n)
            if row is not None:
                ids.append(row.id)
        return ids

    def selected_rows(self) -> list[WritebackRow]:
        rows = sorted(index.row() for index in self.selectionModel().selectedRows())
        return [r for r in (self._model.row_at(n) for n in rows) if r is not None]

    def select_ids(self, ids: Iterable[int], *, current: int | None = None) -> int:
        """Select the rows with these ids that are loaded; returns how many were found."""
        selection = QItemSelection()
        last = self._model.columnCount() - 1
        found = 0
        for writeback_id in ids:
            n = self._model.row_of_id(writeback_id)
            if n is not None:
                selection.select(self._model.index(n, 0), self._model.index(n, last))
                found += 1
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        self.selectionModel().select(selection, flags)
        target = self._model.row_of_id(current) if current is not None else None
        if target is None and found:
            target = min(idx.row() for idx in self.selectionModel().selectedRows())
        if target is not None:
            self.selectionModel().setCurrentIndex(
                self._model.index(target, 0), QItemSelectionModel.SelectionFlag.NoUpdate
            )
        return found

    @Slot()
    def _keep_selection(self) -> None:
        self._kept_ids = self.selected_ids()
        current = self._model.row_at(self.currentIndex().row()) if self.currentIndex().isValid() else None
        self._kept_current = current.id if current else None
        self._kept_scroll = self.verticalScrollBar().value()

    @Slot(bool)
    def _restore_selection(self, keep_position: bool) -> None:
        found = self.select_ids(self._kept_ids, current=self._kept_current)
        if keep_position:
            self.verticalScrollBar().setValue(self._kept_scroll)
        elif found and self.currentIndex().isValid():
            self.scrollTo(self.currentIndex(), QAbstractItemView.ScrollHint.EnsureVisible)
        else:
            self.scrollToTop()
        if not found:
            self.selected_ids_changed.emit([])

    @Slot(int, Qt.SortOrder)
    def _sort_indicator_changed(self, section: int, order: Qt.SortOrder) -> None:
        if 0 <= section < len(Column) and COLUMNS[Column(section)].sort is None:
            # Not sortable in SQL: put the arrow back where the rows really are sorted.
            header = self.horizontalHeader()
            header.blockSignals(True)
            header.setSortIndicator(*self._sorted_by)
            header.blockSignals(False)
            return
        self._sorted_by = (section, order)

    def show_sort(self, query: ListQuery) -> None:
        """Put the header's arrow on the column the query sorts by."""
        column = column_for_sort(query.sort)
        if column is None:
            return
        order = Qt.SortOrder.DescendingOrder if query.descending else Qt.SortOrder.AscendingOrder
        header = self.horizontalHeader()
        header.blockSignals(True)
        header.setSortIndicator(column, order)
        header.blockSignals(False)
        self._sorted_by = (int(column), order)

    @Slot(QItemSelection, QItemSelection)
    def _selection_changed(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        self.selected_ids_changed.emit(self.selected_ids())


def _accounts(factory: Factory) -> list[str]:
    with read_session(factory) as session:
        return listing.list_accounts(session)


class WritebackListPage(QWidget):
    """Admin › Setup › Bridge Configuration › Writeback List.

    Signals:
        retry_requested(list): the user asked to retry these writeback ids (context menu, detail pane).
        selection_changed(list): ids of the selected rows.
        lookup_requested(str): the user asked to see this email in the constituent viewer.
        status_message(str): something to tell the user in the status bar.
        counts_changed(dict): rows per status under the current filter (without its status choice).
        reschedule_requested(WritebackRow): Reschedule… on a mailing activity (context menu, detail pane).
        cancel_requested(WritebackRow): Cancel scheduled… on a Scheduled mailing activity.
        queue_changed(list): this page changed these rows (a discard, an action on all matching rows).
        live_changed(): the change feed brought news of changed rows (the list took it).
    """

    retry_requested = Signal(list)
    reschedule_requested = Signal(object)
    cancel_requested = Signal(object)
    selection_changed = Signal(list)
    live_changed = Signal()
    status_message = Signal(str)
    counts_changed = Signal(dict)
    lookup_requested = Signal(str)
    queue_changed = Signal(list)

    def __init__(
        self,
        factory: Factory,
        runner: TaskRunner,
        *,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        page_size: int | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._factory = factory
        self._runner = TaskGroup(self, runner)
        self._count_task: Task | None = None
        self._count_generation = 0
        self._counts: StatusCounts | None = None
        self._select_after_load: str | None = None
        self._runner_ref = runner
        #: The filter whose every matching row is selected ("Select all N matching"), or None.
        self.all_matching: WritebackFilter | None = None

        self.model = WritebackTableModel(factory, runner, parent=self)
        if page_size is not None:
            self.model.page_size = page_size
        self.filter_bar = FilterBar(lease_seconds)
        self.table = WritebackTable(self.model)
        self.detail = DetailPane(factory, runner)
        self.detail.setMinimumHeight(180)
        self.gate = PermissionGate(parent=self)

        # Below the table rather than beside it: ten columns need the window's whole width.
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("listSplitter")
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)

        # Gmail's affordance: once the loaded page is all selected, offer every row of the filter.
        self.select_all_bar = QFrame()
        self.select_all_bar.setObjectName("selectAllBar")
        self.select_all_label = QLabel()
        self.select_all_button = QPushButton()
        self.select_all_button.setObjectName("selectAllMatching")
        self.select_all_button.setFlat(True)
        self.select_all_button.setCursor(Qt.CursorShape.PointingHandCursor)
        # A link, in the palette's link colour (light or dark).
        self.select_all_button.setStyleSheet(
            "QPushButton { color: palette(link); text-decoration: underline; border: none; padding: 2px; }"
        )
        self.select_all_button.clicked.connect(self._select_all_clicked)
        bar_layout = QHBoxLayout(self.select_all_bar)
        bar_layout.setContentsMargins(8, 2, 8, 2)
        bar_layout.addStretch(1)
        bar_layout.addWidget(self.select_all_label)
        bar_layout.addWidget(self.select_all_button)
        bar_layout.addStretch(1)
        self.select_all_bar.hide()

        # Rows changed elsewhere that now match the filter among those shown: offered, not pushed in
        # under the reader's eyes (the rows they are reading would jump).
        self.arrivals_bar = QFrame()
        self.arrivals_bar.setObjectName("selectAllBar")
        self.arrivals_button = QPushButton()
        self.arrivals_button.setObjectName("showArrivals")
        self.arrivals_button.setFlat(True)
        self.arrivals_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.arrivals_button.setStyleSheet(
            "QPushButton { color: palette(link); text-decoration: underline; border: none; padding: 2px; }"
        )
        self.arrivals_button.setToolTip("Read the list again with them; the selection stays")
        self.arrivals_button.clicked.connect(self.model.reload)
        arrivals_layout = QHBoxLayout(self.arrivals_bar)
        arrivals_layout.setContentsMargins(8, 2, 8, 2)
        arrivals_layout.addStretch(1)
        arrivals_layout.addWidget(self.arrivals_button)
        arrivals_layout.addStretch(1)
        self.arrivals_bar.hide()

        #: Takes the news of changed rows from the change feed (in memory: no I/O on this thread).
        self._feed: ChangeFeed | None = None
        self.live_timer = QTimer(self)
        self.live_timer.setObjectName("liveListTimer")
        self.live_timer.setInterval(LIVE_INTERVAL_MS)
        self.live_timer.timeout.connect(self._take_changes)
        self._recount_after = False
        self._blank_counts_timer = QTimer(self)
        self._blank_counts_timer.setObjectName("slowCountTimer")
        self._blank_counts_timer.setSingleShot(True)
        self._blank_counts_timer.setInterval(SLOW_QUERY_MS)
        self._blank_counts_timer.timeout.connect(self._counting_is_slow)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.filter_bar)
        layout.addWidget(self.arrivals_bar)
        layout.addWidget(self.select_all_bar)
        layout.addWidget(self.splitter, 1)

        self.filter_bar.filter_changed.connect(self.apply_filters)
        self.filter_bar.exact_count_requested.connect(self.count_exactly)
        self.table.selected_ids_changed.connect(self._selection_changed)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.doubleClicked.connect(self._open_detail)
        self.table.activated.connect(self._open_detail)  # Enter, as a double click
        keyboard.list_keys(self.filter_bar.search, self.filter_bar.tab_chain[-1], self.table)
        self.detail.retry_requested.connect(self.retry_requested)
        self.detail.vanished.connect(self._row_vanished)
        self.detail.reschedule_requested.connect(self.reschedule_requested)
        self.detail.cancel_requested.connect(self.cancel_requested)
        self.detail.discard_requested.connect(self.discard_rows)
        self.model.first_page_loaded.connect(self._first_page_loaded)
        self.model.page_appended.connect(self._page_appended)
        self.model.loading_changed.connect(self._update_summary)
        self.model.load_failed.connect(self.status_message)
        self.model.arrivals_changed.connect(self._show_arrivals)
        self.model.rows_removed.connect(self._rows_removed)

    # --- queries ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Run the first query (separate from construction so that state can be restored first)."""
        self.apply_filters()
        self._runner.submit(_accounts, self._factory, on_done=self.filter_bar.add_accounts)

    # --- staying live ----------------------------------------------------------------------------

    def go_live(self, feed: ChangeFeed) -> None:
        """Follow ``feed``: changes made anywhere show within a couple of seconds, without F5."""
        self._feed = feed
        self.live_timer.start()

    def stop_live(self) -> None:
        self.live_timer.stop()
        self._feed = None

    @Slot()
    def _take_changes(self) -> None:
        if self._feed is None:
            return
        changes = self._feed.take()
        if not changes:
            if self._recount_after and self._count_task is None:
                self._recount_after = False
                self.refresh_counts(quiet=True)
            return
        self.model.apply_changes(changes.ids, everything=changes.everything)
        if changes.everything or self.detail.writeback_id in changes.ids:
            self.detail.refresh()
        # One count at a time: while one runs, the next waits for it rather than replacing it.
        if self._count_task is None:
            self.refresh_counts(quiet=True)
        else:
            self._recount_after = True
        self.live_changed.emit()

    @Slot(int)
    def _show_arrivals(self, n: int) -> None:
        if n <= 0:
            self.arrivals_bar.hide()
            return
        self.arrivals_button.setText(
            f"{n:,} more writeback{'s' if n != 1 else ''} now match{'es' if n == 1 else ''} the filter: show"
        )
        self.arrivals_bar.show()

    @Slot(list)
    def _rows_removed(self, ids: list[int]) -> None:
        self._update_summary()
        self.status_message.emit(
            f"{len(ids):,} writeback{'s' if len(ids) != 1 else ''} left the queue (pruned) and the list"
        )

    def current_query(self) -> ListQuery:
        return self.model.query

    def current_filter(self) -> WritebackFilter:
        return self.model.query.filter

    @Slot()
    def apply_filters(self) -> None:
        """Re-query with the filter bar's filter, and recount the statuses under it."""
        flt = self.filter_bar.build_filter()
        self.all_matching = None
        self.model.set_query(replace(self.model.query, filter=flt))
        self.refresh_counts()
        self._update_summary()

    @Slot()
    def refresh_counts(self, exact: bool = False, *, quiet: bool = False) -> None:
        """Count the statuses under the current filter again (up to the cap, or ``exact``ly); a count
        still running for an older filter is stopped in the database. ``quiet``: the old counts stay
        shown until the new ones arrive (a live update, not a new filter)."""
        self._count_generation += 1
        generation = self._count_generation
        if self._count_task is not None:
            self._count_task.cancel()
        if not quiet:
            # "…" only for a count that takes a while: a quick one would lay the bar out twice for nothing.
            self._blank_counts_timer.start()
        stop = QueryStop()
        self._count_task = self._runner.submit(
            count_statuses,
            self._factory,
            self.model.query.filter,
            stop,
            exact,
            stop=stop,
            on_done=lambda counts: self._counted(generation, counts),
            on_error=lambda error: self._count_failed(generation, error),
        )

    @Slot()
    def count_exactly(self) -> None:
        """Count every matching row, however many (the filter bar's "Count exactly")."""
        self.refresh_counts(exact=True)

    @Slot()
    def _counting_is_slow(self) -> None:
        if self._count_task is not None:
            self.filter_bar.set_counts(None)

    def _counted(self, generation: int, counts: StatusCounts) -> None:
        if generation != self._count_generation:
            return
        self._blank_counts_timer.stop()
        self._count_task = None
        self._counts = counts
        self.filter_bar.set_counts(counts.counts, bounded=counts.bounded)
        self._update_summary()
        self.counts_changed.emit(dict(counts.counts))

    def _count_failed(self, generation: int, error: BaseException) -> None:
        if generation == self._count_generation:
            self._blank_counts_timer.stop()
            self._count_task = None
            self.status_message.emit(f"Rows could not be counted: {error}")

    def matching_rows(self) -> int | None:
        """How many rows the current filter matches, once counted (at least that many when the count
        stopped at its cap: see ``matching_text``)."""
        if self._counts is None:
            return None
        return self._counts.total(self.model.query.filter.statuses)

    def matching_text(self) -> str | None:
        """The filter's count as shown: "1,204", or "2,000+" when counting stopped at the cap."""
        total = self.matching_rows()
        return None if total is None or self._counts is None else self._counts.text(total)

    @Slot()
    def reload(self) -> None:
        """F5: read the list and the counts again, keeping selection and scroll position."""
        flt = self.filter_bar.build_filter()
        if flt != self.model.query.filter:
            # "Stuck" is measured from now, so the filter moves on with the clock.
            self.model.set_query(replace(self.model.query, filter=flt))
        else:
            self.model.reload()
        self.refresh_counts()
        self.detail.refresh()

    def refresh_rows(self, ids: Sequence[int]) -> None:
        """Re-read just these rows after a dispatcher cycle; selection and scroll stay put."""
        self.model.refresh_rows(ids)
        if self.detail.writeback_id in set(ids):
            self.detail.refresh()
        self.refresh_counts()

    def select_ref(self, ref: str) -> None:
        """Show the writeback with this reference: search for it alone and select it when it arrives."""
        self._select_after_load = normalize_ref(ref)
        self.filter_bar.blockSignals(True)
        self.filter_bar.clear()
        self.filter_bar.blockSignals(False)
        self.filter_bar.set_text(self._select_after_load)

    # --- selection -------------------------------------------------------------------------------

    def selected_ids(self) -> list[int]:
        return self.table.selected_ids()

    def selected_rows(self) -> list[WritebackRow]:
        return self.table.selected_rows()

    @Slot(list)
    def _selection_changed(self, ids: list[int]) -> None:
        if self.all_matching is not None and len(ids) != self.model.rowCount():
            self.all_matching = None
        self._update_select_all(ids)
        current = self.table.currentIndex()
        row = self.model.row_at(current.row()) if current.isValid() else None
        if row is None or row.id not in ids:
            row = self.model.row_at(self.table.selectionModel().selectedRows()[0].row()) if ids else None
        if row is None or row.id != self.detail.writeback_id:
            self.detail.show_writeback(row.id if row else None, row.ref if row else None)
        self.selection_changed.emit(ids)

    @Slot(int, str)
    def _row_vanished(self, _writeback_id: int, ref: str) -> None:
        # The list is read again without it; the pane then follows what is still selected.
        self.status_message.emit(f"{ref or 'The writeback shown'} is no longer in the queue")
        self.model.reload()
        self.refresh_counts()

    @Slot(bool)
    def _first_page_loaded(self, _keep_position: bool) -> None:
        self.table.show_sort(self.model.query)
        self.filter_bar.add_accounts({row.account for row in self.model.loaded_rows()})
        if self._select_after_load is not None:
            ref, self._select_after_load = self._select_after_load, None
            n = self.model.row_of_ref(ref)
            if n is None:
                self.status_message.emit(f"No writeback with reference {ref}")
            else:
                row = self.model.row_at(n)
                assert row is not None
                self.table.select_ids([row.id], current=row.id)
                self.table.scrollTo(self.model.index(n, 0))
        self._update_summary()

    # --- every row matching the filter -----------------------------------------------------------

    def _update_select_all(self, ids: Sequence[int]) -> None:
        loaded = self.model.rowCount()
        total = self.matching_rows()
        if self.all_matching is not None and total is not None:
            self.select_all_label.setText(
                f"All {self.matching_text()} writebacks matching the filter are selected."
            )
            self.select_all_button.setText("Clear selection")
            self.select_all_bar.show()
        elif (
            len(ids) > 1
            and len(ids) == loaded
            and not self.model.at_end
            and total is not None
            and total > loaded
        ):
            self.select_all_label.setText(f"All {loaded:,} loaded writebacks are selected.")
            self.select_all_button.setText(f"Select all {self.matching_text()} matching the filter")
            self.select_all_bar.show()
        else:
            self.select_all_bar.hide()

    @Slot()
    def _select_all_clicked(self) -> None:
        if self.all_matching is not None:
            self.all_matching = None
            self.table.clearSelection()
            self._update_select_all([])
        else:
            self.select_all_matching()

    def select_all_matching(self) -> None:
        """Take every row of the current filter as the selection, loaded or not."""
        self.table.selectAll()
        self.all_matching = self.model.query.filter
        self._update_select_all(self.selected_ids())
        total = self.matching_rows()
        if total is not None:
            self.status_message.emit(
                f"All {self.matching_text()} writebacks matching the filter are selected"
            )
        self.selection_changed.emit(self.selected_ids())

    def selection_count(self) -> int:
        """How many writebacks the selection stands for: every matching row, or the rows selected."""
        if self.all_matching is not None:
            return self.matching_rows() or 0
        return len(self.selected_ids())

    def actionable_count(self, action: str) -> int:
        """How many writebacks of the selection a Retry (``"retry"``) or Discard (``"discard"``) would change.

        While every matching row is chosen it is the filter's count (the action itself skips the rows it
        does not apply to); otherwise the selected rows, as last read, that the rule lets a person act on.
        """
        if self.all_matching is not None:
            return self.matching_rows() or 0
        decide = manual_retry_decision if action == "retry" else discard_decision
        return sum(1 for row in self.selected_rows() if decide(row.state).allowed)

    @Slot(list)
    def request_retry(self, ids: list[int]) -> None:
        """Retry: every matching row in batches, or the Retry dialog for these ids."""
        if self.all_matching is not None:
            self._act_on_all_matching("retry")
        elif ids:
            self.retry_requested.emit(list(ids))

    def act_on_all_matching(self, action: str) -> bool:
        """Retry or discard every matching row when that is the selection; False when it is not."""
        if self.all_matching is None:
            return False
        self._act_on_all_matching(action)
        return True

    def _act_on_all_matching(self, action: str) -> None:
        flt = self.all_matching
        if flt is None:
            return
        result = matching.ask_matching_action(self._factory, self._runner_ref, flt, action, self)
        if result is None:
            return
        _title, past, _ = matching.VERBS[action]
        self.status_message.emit(f"{count_text(result.changed, 'writeback')} {past}")
        self.all_matching = None
        self.reload()
        self.queue_changed.emit([])

    @Slot(list)
    def request_discard(self, ids: list[int]) -> None:
        """Discard: every matching row in batches, or the Discard dialog for these ids."""
        if self.all_matching is not None:
            self._act_on_all_matching("discard")
            return
        self.discard_rows(ids)

    @Slot(list)
    def discard_rows(self, ids: list[int]) -> None:
        """The Discard dialog for exactly these ids."""
        if not ids:
            self.status_message.emit("Select the writebacks to discard first")
            return
        done = discard.ask_discard(
            self._factory, self._runner_ref, ids, self, filter=self.model.query.filter.to_json() or None
        )
        if done:
            self.status_message.emit(
                f"{count_text(len(done), 'writeback')} discarded; a Retry sends one again"
            )
            self.refresh_rows(done)
            self.queue_changed.emit(list(done))

    @Slot(int)
    def _page_appended(self, _count: int) -> None:
        if self.all_matching is not None:
            # Every matching row is chosen: the rows that just arrived are too.
            self.table.selectAll()
        self.filter_bar.add_accounts(
            {row.account for row in self.model.loaded_rows()[-self.model.page_size :]}
        )
        self._update_summary()

    @Slot()
    def _update_summary(self) -> None:
        shown = self.model.rowCount()
        total = self.matching_rows()
        if self.model.loading and shown == 0:
            text = "Loading…"
        elif total is None:
            text = f"{shown:,} shown"
        elif self.model.at_end:
            text = f"{shown:,} writeback{'s' if shown != 1 else ''}"
        else:
            # Short: at 1,024 px the line it sits on has little room; the tooltip says the rest.
            text = f"{shown:,} of {self.matching_text()} shown"
        if self.model.loading and shown:
            text += "  · loading…"
        self.filter_bar.set_summary(text)
        self.filter_bar.summary.setToolTip(
            "" if self.model.at_end else "Rows are read a page at a time: scroll down for more"
        )

    # --- context menu and actions ----------------------------------------------------------------

    @Slot(QPoint)
    def _context_menu(self, pos: QPoint) -> None:
        index = self.table.indexAt(pos)
        if not index.isValid():
            return
        if not self.table.selectionModel().isRowSelected(index.row()):
            self.table.selectRow(index.row())
        row = index.data(ROW_ROLE)
        if not isinstance(row, WritebackRow):
            return
        menu = self.context_menu_for(row)
        menu.exec(self.table.viewport().mapToGlobal(pos))

    def set_gate(self, gate: PermissionGate) -> None:
        """What the connected role may not do is disabled here too: the context menu and the detail pane."""
        self.gate = gate
        self.detail.set_gate(gate)

    def context_menu_for(self, row: WritebackRow) -> QMenu:
        """The table's context menu for ``row`` (built separately so that tests can inspect it)."""
        menu = QMenu(self)
        menu.addAction("Copy reference", lambda: self.copy_text(row.ref))
        copy_email = menu.addAction("Copy email", lambda: self.copy_text(row.email or ""))
        copy_email.setEnabled(bool(row.email))
        menu.addAction("Open detail", lambda: self._show_detail_of(row.id))
        look_up = menu.addAction(
            "Look up in Personify360", lambda: self.lookup_requested.emit(row.email or "")
        )
        look_up.setEnabled(bool(row.email))
        look_up.setToolTip("Open the constituent viewer on this email: what reached Personify360")
        menu.addSeparator()
        ids = self.selected_ids() or [row.id]
        what = "all matching" if self.all_matching is not None else "selected"
        count = self.actionable_count("retry")
        retry = menu.addAction(f"Retry {what} ({count:,})…", lambda: self.request_retry(ids))
        retry.setShortcut("Ctrl+R")
        retry.setEnabled(count > 0)
        self.gate.guard(retry, Action.RETRY)
        count = self.actionable_count("discard")
        discard_entry = menu.addAction(f"Discard {what} ({count:,})…", lambda: self.request_discard(ids))
        discard_entry.setEnabled(count > 0)
        self.gate.guard(discard_entry, Action.DISCARD)
        if row.kind is Kind.MAILING_ACTIVITY:
            self._add_schedule_entries(menu, row)
        self.gate.guard_menu(menu)
        menu.addSeparator()
        menu.addAction(f"Filter by status “{row.status.label}”", lambda: self.filter_by_status(row.status))
        menu.addAction(f"Filter by kind “{row.kind.label}”", lambda: self.filter_by_kind(row.kind))
        if row.email:
            menu.addAction(f"Filter by email “{row.email}”", lambda: self.filter_by_text(row.email))
        reason = error_reason(row.last_error)
        if row.last_error and reason != NO_MESSAGE:
            shown = reason if len(reason) <= 60 else reason[:59] + "…"
            menu.addAction(f"Filter by this error “{shown}”", lambda: self.filter_by_error(reason))
        if row.master_customer_id:
            menu.addAction(
                f"Filter by constituent “{row.master_customer_id}”",
                lambda: self.filter_by_text(row.master_customer_id),
            )
        return menu

    def _add_schedule_entries(self, menu: QMenu, row: WritebackRow) -> None:
        reschedule = menu.addAction("Reschedule…", lambda: self.reschedule_requested.emit(row))
        reschedule.setEnabled(row.status in MOVABLE)
        self.gate.guard(reschedule, Action.RESCHEDULE)
        cancel = menu.addAction("Cancel scheduled…", lambda: self.cancel_requested.emit(row))
        cancel.setEnabled(row.status is Status.SCHEDULED)
        self.gate.guard(cancel, Action.CANCEL)

    def copy_text(self, text: str) -> None:
        QGuiApplication.clipboard().setText(text)
        if text:
            self.status_message.emit(f"Copied {text}")

    def filter_by_status(self, status: Status) -> None:
        self.filter_bar.set_statuses([status])

    def filter_by_kind(self, kind: Kind) -> None:
        self.filter_bar.set_kinds([kind])

    def filter_by_text(self, text: str | None) -> None:
        if text:
            self.filter_bar.set_text(text)

    def filter_by_error(self, reason: str) -> None:
        """Error rows whose last error has this reason (a Top errors group)."""
        self.filter_bar.blockSignals(True)
        self.filter_bar.clear()
        self.filter_bar.set_statuses([Status.ERROR])
        self.filter_bar.blockSignals(False)
        self.filter_bar.set_error_text(reason)

    def _show_detail_of(self, writeback_id: int) -> None:
        self.detail.setVisible(True)
        if self.detail.writeback_id != writeback_id:
            self.detail.show_writeback(writeback_id)

    @Slot()
    def _open_detail(self) -> None:
        ids = self.selected_ids()
        if ids:
            self._show_detail_of(ids[0])

    def set_detail_visible(self, visible: bool) -> None:
        self.detail.setVisible(visible)

    # --- state -----------------------------------------------------------------------------------

    def save_state(self) -> Mapping[str, QByteArray]:
        return {
            "splitter": self.splitter.saveState(),
            "header": QByteArray(HEADER_STATE_VERSION) + self.table.horizontalHeader().saveState(),
        }

    def restore_state(self, state: Mapping[str, object]) -> None:
        splitter = state.get("splitter")
        if isinstance(splitter, QByteArray) and not splitter.isEmpty():
            self.splitter.restoreState(splitter)
        header = state.get("header")
        if isinstance(header, QByteArray) and header.startsWith(QByteArray(HEADER_STATE_VERSION)):
            header = header.mid(len(HEADER_STATE_VERSION))
        else:
            # Saved for the columns in another order: the widths would land on the wrong columns.
            header = None
        if isinstance(header, QByteArray) and not header.isEmpty():
            # Quietly: a sort indicator in the saved state must not start a query before start().
            self.table.horizontalHeader().blockSignals(True)
            self.table.horizontalHeader().restoreState(header)
            self.table.horizontalHeader().blockSignals(False)
            # The saved header also carries a sort indicator; make the query follow it.
            section = self.table.horizontalHeader().sortIndicatorSection()
            order = self.table.horizontalHeader().sortIndicatorOrder()
            sort = COLUMNS[Column(section)].sort if 0 <= section < len(Column) else None
            if sort is not None:
                descending = order == Qt.SortOrder.DescendingOrder
                self.model.set_query(replace(self.model.query, sort=sort, descending=descending), run=False)
            self.table.show_sort(self.model.query)
