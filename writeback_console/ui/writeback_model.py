"""The Writeback List's table model: pages of the filtered, sorted queue read off the GUI thread.

The model never holds every row of a big queue. It keeps the rows read so far and the keyset cursor of
the last page; ``fetchMore`` asks the task runner for the next page. Filtering and sorting happen in SQL:
a new query bumps a generation counter, and any page that arrives for an older generation is dropped.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtGui import QFontMetrics
from sqlalchemy.orm import Session, sessionmaker

from writeback_console.domain import Kind, SortField, Status, attempts_left
from writeback_console.store import listing
from writeback_console.store.engine import QueryStop, read_session
from writeback_console.store.listing import Cursor, Page, WritebackFilter
from writeback_console.store.rows import WritebackRow
from writeback_console.ui.status_pill import PillSpec
from writeback_console.ui.status_style import local_text
from writeback_console.ui.tasks import Task, TaskGroup, TaskRunner

Factory = sessionmaker[Session]
Index = QModelIndex | QPersistentModelIndex

PAGE_SIZE = 200
#: A reload reads back as many rows as were shown (so the scroll position survives), up to this many.
MAX_RELOAD_ROWS = 5000
ERROR_PREVIEW = 300
#: A query still running after this long (ms) is announced as loading.
SLOW_QUERY_MS = 150

#: Every cell's flags, made once: the view asks for them for every cell it paints, and combining Qt's
#: enum flags in Python costs more than the rest of the call.
ROW_FLAGS = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

#: The whole row as a ``WritebackRow``.
ROW_ROLE = Qt.ItemDataRole.UserRole + 1
#: A ``PillSpec`` for the status column (None elsewhere).
PILL_ROLE = Qt.ItemDataRole.UserRole + 2
#: The writeback id, any column.
ID_ROLE = Qt.ItemDataRole.UserRole + 3


class Column(enum.IntEnum):
    """The list's columns in their order: who, then what happened and why (readable at 1,024 px), then
    the rest."""

    REF = 0
    EMAIL = 1
    STATUS = 2
    ATTEMPTS = 3
    LAST_ERROR = 4
    KIND = 5
    CREATED = 6
    SENT = 7
    CONSTITUENT = 8
    ACCOUNT = 9


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    title: str
    #: The queue sort a click on the header asks for; None: not sortable.
    sort: SortField | None
    tooltip: str
    width: int
    #: The widest text a cell of a short column holds: the column is made at least that wide in the
    #: font in use, so a date is never cut ("due 2026-12-…").
    widest: str = ""


COLUMNS: dict[Column, ColumnSpec] = {
    Column.REF: ColumnSpec(
        "Ref", "ref", "Writeback reference, also at the end of the CRM360 activity text", 120, "WB-MWMWMWMWMW"
    ),
    Column.EMAIL: ColumnSpec(
        "Email / Mailing",
        "email",
        "Email address, or the mailing for mailing activity (sorted by email: mailing activity comes last)",
        200,
    ),
    Column.STATUS: ColumnSpec("Status", "status", "Where the writeback is in its life", 170),
    Column.ATTEMPTS: ColumnSpec("Attempts", "attempts", "Attempts made / attempts allowed", 68, "10/10"),
    Column.LAST_ERROR: ColumnSpec(
        "Last error", None, "The last failure, as Personify360 reported it (all of it in the tooltip)", 300
    ),
    Column.KIND: ColumnSpec("Kind", "kind", "Writeback element", 130),
    Column.CREATED: ColumnSpec(
        "Created", "created_at", "When the writeback was queued (local time)", 125, "2026-12-28 23:58"
    ),
    Column.SENT: ColumnSpec(
        "Sent / Scheduled",
        "sent_at",
        "When it reached Personify360, or when it is due (sorted by when sent: rows not sent come last)",
        130,
        "due 2026-12-28 23:58",
    ),
    Column.CONSTITUENT: ColumnSpec("Constituent", "master_customer_id", "Personify360 MasterCustomerId", 110),
    Column.ACCOUNT: ColumnSpec("Account", "account", "Informz account", 90),
}


#: Room beside a cell's text: the view's margins on both sides and the header's sort arrow.
CELL_PADDING = 24


def fitted_width(spec: ColumnSpec, metrics: QFontMetrics) -> int:
    """The column's width: its own, or more where its widest text or title needs it in this font."""
    needed = max(metrics.horizontalAdvance(spec.widest), metrics.horizontalAdvance(spec.title))
    return max(spec.width, needed + CELL_PADDING)


def column_for_sort(sort: SortField) -> Column | None:
    return next((c for c, spec in COLUMNS.items() if spec.sort == sort), None)


@dataclass(frozen=True, slots=True)
class ListQuery:
    """What the list shows: a filter and an order, both applied in SQL."""

    filter: WritebackFilter = field(default_factory=WritebackFilter)
    sort: SortField = "created_at"
    descending: bool = True


def fetch_page(
    factory: Factory, query: ListQuery, after: Cursor | None, limit: int, stop: QueryStop | None = None
) -> Page:
    """One page of ``query``; runs on a worker thread with its own session, stopped by ``stop``."""
    with read_session(factory, stop) as session:
        return listing.list_page(
            session, query.filter, sort=query.sort, descending=query.descending, after=after, limit=limit
        )


def fetch_rows(factory: Factory, ids: Sequence[int]) -> list[WritebackRow]:
    """The current state of some rows (those gone meanwhile are left out); runs on a worker thread."""
    with read_session(factory) as session:
        found = listing.get_writebacks(session, ids)
    return [found[i] for i in ids if i in found]


def fetch_arrivals(factory: Factory, query: ListQuery, ids: Sequence[int], last: Cursor | None) -> list[int]:
    """Which of ``ids`` now belong among the rows shown (``listing.arrivals``); on a worker thread."""
    with read_session(factory) as session:
        return listing.arrivals(
            session, query.filter, ids, sort=query.sort, descending=query.descending, last=last
        )


def local_time(value: datetime | None) -> str:
    """A stored (UTC) time as the user's local wall-clock time, to the minute."""
    # The list leaves an empty cell where a form shows NONE_TEXT.
    return "" if value is None else local_text(value)


def mailing_label(row: WritebackRow) -> str:
    name = row.payload.get("mailing_name")
    if isinstance(name, str) and name:
        return f"Mailing: {name}"
    return f"Mailing #{row.mailing_id}" if row.mailing_id is not None else "Mailing"


def constituent_label(row: WritebackRow) -> str:
    if not row.master_customer_id:
        return ""
    if row.sub_customer_id:
        return f"{row.master_customer_id}-{row.sub_customer_id}"
    return row.master_customer_id


def first_line(text: str | None, limit: int = ERROR_PREVIEW) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def recipients_text(progress: tuple[int, int]) -> str:
    """A mailing activity's progress: "31,204 of 100,000 recipients"."""
    arrived, total = progress
    return f"{arrived:,} of {total:,} recipients"


def status_tooltip(row: WritebackRow) -> str:
    if row.status is Status.ERROR:
        left = attempts_left(row.state)
        if left:
            return f"Error — {left} automatic {'retry' if left == 1 else 'retries'} still to come"
        return "Error — automatic retries used up; a person can retry it"
    if row.status is Status.PROCESSING and row.locked_by:
        sent = f"; {recipients_text(row.progress)} arrived" if row.progress is not None else ""
        return f"Processing — claimed by {row.locked_by} at {local_time(row.locked_at)}{sent}"
    if row.status is Status.SCHEDULED and row.scheduled_for:
        return f"Scheduled for {local_time(row.scheduled_for)}"
    if row.status is Status.DISCARDED:
        return (
            "Discarded — an advisor stopped retrying it (the reason is in its timeline); "
            "Retry sends it once more"
        )
    if row.status is Status.CANCELLED:
        was = f", was due {local_time(row.scheduled_for)}" if row.scheduled_for else ""
        return f"Cancelled by staff{was}; nothing is written unless the mailing is scheduled again"
    return row.status.label


def pill_spec(row: WritebackRow) -> PillSpec:
    detail = None
    if row.status is Status.PROCESSING and row.progress is not None and row.progress[1]:
        # Whole percents, rounded down: 100% only once every recipient arrived.
        detail = f"{row.progress[0] * 100 // row.progress[1]}%"
    return PillSpec(
        row.status, retries_remain=row.status is Status.ERROR and attempts_left(row.state) > 0, detail=detail
    )


def display_text(row: WritebackRow, column: Column) -> str:
    """The text of a cell (also what the CSV export and copy actions use for people)."""
    if column is Column.REF:
        return row.ref
    if column is Column.CREATED:
        return local_time(row.created_at)
    if column is Column.KIND:
        return row.kind.label
    if column is Column.EMAIL:
        return row.email if row.email else (mailing_label(row) if row.kind is Kind.MAILING_ACTIVITY else "")
    if column is Column.CONSTITUENT:
        return constituent_label(row)
    if column is Column.ACCOUNT:
        return row.account
    if column is Column.STATUS:
        return row.status.label
    if column is Column.ATTEMPTS:
        return f"{row.attempts}/{row.max_attempts}"
    if column is Column.SENT:
        if row.sent_at is not None:
            return local_time(row.sent_at)
        if row.status is Status.PROCESSING and row.progress is not None:
            return recipients_text(row.progress)
        if row.scheduled_for is not None and row.status is Status.SCHEDULED:
            return f"due {local_time(row.scheduled_for)}"
        return ""
    return first_line(row.last_error)


_DISPLAY = int(Qt.ItemDataRole.DisplayRole.value)
_ALIGNMENT = int(Qt.ItemDataRole.TextAlignmentRole.value)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole.value)
_ROW, _PILL, _ID = int(ROW_ROLE), int(PILL_ROLE), int(ID_ROLE)
_ROLES = frozenset({_DISPLAY, _ALIGNMENT, _TOOLTIP, _ROW, _PILL, _ID})
_COLUMN_COUNT = len(Column)
_CENTER = int(Qt.AlignmentFlag.AlignCenter.value)


class WritebackTableModel(QAbstractTableModel):
    """Rows of the Writeback List, read page by page from the database off the GUI thread.

    Signals:
        loading_changed(bool): a query has been waiting for the database for a while (True; a quick one
            is not announced), or no longer is (False, after a True).
        first_page_loaded(bool): a new query's first page replaced the rows; True when it was a
            ``reload()`` (the view keeps its scroll position), False for a new filter or sort.
        page_appended(int): ``fetchMore`` added this many rows.
        load_failed(str): a query failed; the text says why, for the status bar.
        rows_refreshed(list): ``refresh_rows`` re-read these ids.
        rows_removed(list): these ids are no longer in the queue (pruned) and left the list.
        arrivals_changed(int): how many changed rows now match the filter among those shown without
            being in the list (a reload shows them); 0 once it has.
    """

    loading_changed = Signal(bool)
    first_page_loaded = Signal(bool)
    page_appended = Signal(int)
    load_failed = Signal(str)
    rows_refreshed = Signal(list)
    rows_removed = Signal(list)
    arrivals_changed = Signal(int)

    def __init__(
        self,
        factory: Factory,
        runner: TaskRunner,
        *,
        page_size: int = PAGE_SIZE,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._factory = factory
        self._runner = TaskGroup(self, runner)
        self.page_size = page_size
        self._query = ListQuery()
        self._rows: list[WritebackRow] = []
        self._row_of: dict[int, int] = {}
        #: Display texts per row number, made on first paint.
        self._texts: dict[int, tuple[str, ...]] = {}
        self._cursor: Cursor | None = None
        # Nothing to fetch until the first query runs; set_query() or reload() starts it.
        self._at_end = True
        self._failed = False
        self._generation = 0
        self._pending: Task | None = None
        self._loading_shown = False
        self._loading_timer = QTimer(self)
        self._loading_timer.setObjectName("slowQueryTimer")
        self._loading_timer.setSingleShot(True)
        self._loading_timer.setInterval(SLOW_QUERY_MS)
        self._loading_timer.timeout.connect(self._loading_is_slow)
        #: Rows changed elsewhere that now belong among those shown (a reload shows them).
        self.arrivals: set[int] = set()
        #: Rows delivered by the database since the model was made (tests and the benchmark read it).
        self.fetched_rows = 0
        self.pages_fetched = 0

    # --- the query ---------------------------------------------------------------------------

    @property
    def query(self) -> ListQuery:
        return self._query

    @property
    def loading(self) -> bool:
        return self._pending is not None

    @property
    def generation(self) -> int:
        return self._generation

    def set_query(self, query: ListQuery, *, run: bool = True) -> None:
        """Show ``query`` instead: the rows are replaced when its first page arrives.

        ``run=False`` only remembers it (restoring the saved sort before the first query).
        """
        self._query = query
        if run:
            self._start(limit=self.page_size, keep_position=False)

    def set_filter(self, flt: WritebackFilter) -> None:
        self.set_query(replace(self._query, filter=flt))

    def reload(self) -> None:
        """Read the current query again, as many rows as are shown now (selection is kept by the view)."""
        limit = min(max(self.page_size, len(self._rows)), MAX_RELOAD_ROWS)
        self._start(limit=limit, keep_position=True)

    def _start(self, *, limit: int, keep_position: bool) -> None:
        self._generation += 1
        if self._pending is not None:
            self._pending.cancel()
        generation = self._generation
        self._failed = False
        stop = QueryStop()
        self._submit(
            fetch_page,
            self._factory,
            self._query,
            None,
            limit,
            stop,
            stop=stop,
            on_done=lambda page: self._replace(generation, page, keep_position),
            on_error=lambda error: self._failed_with(generation, error),
        )

    def _submit(self, fn: Callable[..., Any], *args: Any, **callbacks: Any) -> None:
        was_loading = self.loading
        self._pending = self._runner.submit(fn, *args, **callbacks)
        if not was_loading and not self._loading_shown:
            # Said only for a query that takes a while: a quick one would make the summary flicker,
            # and lay the filter bar out twice, for nothing.
            self._loading_timer.start()

    @Slot()
    def _loading_is_slow(self) -> None:
        if self.loading and not self._loading_shown:
            self._loading_shown = True
            self.loading_changed.emit(True)

    def _finish_loading(self) -> None:
        self._pending = None
        self._loading_timer.stop()
        if self._loading_shown:
            self._loading_shown = False
            self.loading_changed.emit(False)

    def _replace(self, generation: int, page: Page, keep_position: bool) -> None:
        if generation != self._generation:
            return  # an older filter or sort; its rows must never show
        self.beginResetModel()
        if self.arrivals:
            self.arrivals = set()
            self.arrivals_changed.emit(0)
        self._rows = list(page.rows)
        self._row_of = {row.id: n for n, row in enumerate(self._rows)}
        self._texts = {}
        self._cursor = page.next_cursor
        self._at_end = page.next_cursor is None
        self.endResetModel()
        self._count(page)
        self._finish_loading()
        self.first_page_loaded.emit(keep_position)

    def _append(self, generation: int, page: Page) -> None:
        if generation != self._generation:
            return
        # A row whose sort key changed while paging could come round again; show it once.
        fresh = [row for row in page.rows if row.id not in self._row_of]
        if fresh:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(fresh) - 1)
            for n, row in enumerate(fresh, start=first):
                self._rows.append(row)
                self._row_of[row.id] = n
            self.endInsertRows()
        self._cursor = page.next_cursor
        self._at_end = page.next_cursor is None
        self._count(page)
        self._finish_loading()
        self.page_appended.emit(len(fresh))

    def _count(self, page: Page) -> None:
        self.fetched_rows += len(page.rows)
        self.pages_fetched += 1

    def _failed_with(self, generation: int, error: BaseException) -> None:
        if generation != self._generation:
            return
        # Stop fetchMore from asking again and again; the next query or reload tries afresh.
        self._failed = True
        self._finish_loading()
        self.load_failed.emit(f"The list could not be read from the database: {error}")

    # --- paging ------------------------------------------------------------------------------

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008 - Qt's signature
        if parent.isValid():
            return False
        return not self._at_end and not self._failed

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008 - Qt's signature
        if parent.isValid() or self._at_end or self._failed or self._pending is not None:
            return
        generation = self._generation
        stop = QueryStop()
        self._submit(
            fetch_page,
            self._factory,
            self._query,
            self._cursor,
            self.page_size,
            stop,
            stop=stop,
            on_done=lambda page: self._append(generation, page),
            on_error=lambda error: self._failed_with(generation, error),
        )

    @property
    def at_end(self) -> bool:
        """Every row of the query has been read."""
        return self._at_end

    # --- refreshing --------------------------------------------------------------------------

    def refresh_rows(self, ids: Iterable[int], *, drop_missing: bool = False) -> None:
        """Re-read the given rows (those shown) in place; rows, selection and scroll stay where they are.
        ``drop_missing``: a row no longer in the queue leaves the list."""
        wanted = [i for i in dict.fromkeys(ids) if i in self._row_of]
        if not wanted:
            return
        generation = self._generation
        gone_check = wanted if drop_missing else []
        self._runner.submit(
            fetch_rows,
            self._factory,
            wanted,
            on_done=lambda rows: self._refreshed(generation, rows, gone_check),
            on_error=lambda error: self._failed_refresh(generation, error),
        )

    def _remove_missing(self, gone: set[int]) -> None:
        rows = sorted((self._row_of[i] for i in gone if i in self._row_of), reverse=True)
        if not rows:
            return
        for n in rows:
            self.beginRemoveRows(QModelIndex(), n, n)
            del self._rows[n]
            self.endRemoveRows()
        self._row_of = {row.id: n for n, row in enumerate(self._rows)}
        self._texts = {}
        self.rows_removed.emit(sorted(gone))

    def apply_changes(self, ids: Iterable[int], *, everything: bool = False) -> None:
        """Changes made anywhere (this console, another, a headless dispatcher): re-read the changed
        rows that are shown, in place, and find which others now belong among them (``arrivals``).
        ``everything``: the news was incomplete, so what is shown is read again."""
        if everything:
            self.reload()
            return
        changed = list(dict.fromkeys(ids))
        shown = [i for i in changed if i in self._row_of]
        others = [i for i in changed if i not in self._row_of and i not in self.arrivals]
        if shown:
            self.refresh_rows(shown, drop_missing=True)
        if others and not self.loading:
            generation = self._generation
            last = None if self._at_end or not self._rows else self._cursor
            self._runner.submit(
                fetch_arrivals,
                self._factory,
                self._query,
                others,
                last,
                on_done=lambda found: self._arrived(generation, found),
                on_error=lambda error: self._failed_refresh(generation, error),
            )

    def _arrived(self, generation: int, found: list[int]) -> None:
        if generation != self._generation:
            return
        fresh = {i for i in found if i not in self._row_of}
        if fresh - self.arrivals:
            self.arrivals |= fresh
            self.arrivals_changed.emit(len(self.arrivals))

    def _refreshed(self, generation: int, rows: list[WritebackRow], wanted: Sequence[int] = ()) -> None:
        if generation != self._generation:
            return  # the rows were replaced meanwhile, and read afresh with them
        self._remove_missing(set(wanted) - {row.id for row in rows})
        changed: list[int] = []
        last = len(Column) - 1
        for row in rows:
            n = self._row_of.get(row.id)
            if n is None:
                continue
            self._rows[n] = row
            self._texts.pop(n, None)
            changed.append(row.id)
            self.dataChanged.emit(self.index(n, 0), self.index(n, last))
        self.rows_refreshed.emit(changed)

    def _failed_refresh(self, generation: int, error: BaseException) -> None:
        if generation == self._generation:
            self.load_failed.emit(f"Changed rows could not be read again: {error}")

    # --- reading -----------------------------------------------------------------------------

    def row_at(self, row: int) -> WritebackRow | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def row_of_id(self, writeback_id: int) -> int | None:
        return self._row_of.get(writeback_id)

    def row_of_ref(self, ref: str) -> int | None:
        return next((n for n, row in enumerate(self._rows) if row.ref == ref), None)

    def loaded_rows(self) -> Sequence[WritebackRow]:
        return tuple(self._rows)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(Column)

    def flags(self, index: Index) -> Qt.ItemFlag:
        return ROW_FLAGS if index.isValid() else Qt.ItemFlag.NoItemFlags

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        # Called for every role of every visible cell on each paint: unknown roles leave at once, and
        # a row's texts are formatted once and kept (the rows are immutable snapshots).
        if role not in _ROLES or not index.isValid():
            return None
        n, c = index.row(), index.column()
        if not 0 <= n < len(self._rows) or not 0 <= c < _COLUMN_COUNT:
            return None
        if role == _DISPLAY:
            texts = self._texts.get(n)
            if texts is None:
                texts = self._texts[n] = tuple(display_text(self._rows[n], column) for column in Column)
            return texts[c]
        row = self._rows[n]
        if role == _PILL:
            return pill_spec(row) if c == Column.STATUS else None
        if role == _ROW:
            return row
        if role == _ID:
            return row.id
        if role == _ALIGNMENT:
            return _CENTER if c == Column.ATTEMPTS else None
        return self._tooltip(row, Column(c))

    @staticmethod
    def _tooltip(row: WritebackRow, column: Column) -> str | None:
        if column is Column.STATUS:
            return status_tooltip(row)
        if column is Column.LAST_ERROR and row.last_error:
            text = row.last_error if len(row.last_error) <= 1000 else row.last_error[:999] + "…"
            status = f"HTTP {row.last_http_status}: " if row.last_http_status else ""
            return status + text
        if column is Column.ATTEMPTS:
            left = attempts_left(row.state)
            return f"{row.attempts} of {row.max_attempts} attempts made, {left} left"
        if column is Column.EMAIL and row.kind is Kind.MAILING_ACTIVITY:
            return mailing_label(row)
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(Column):
            return None
        spec = COLUMNS[Column(section)]
        if role == Qt.ItemDataRole.DisplayRole:
            return spec.title
        if role == Qt.ItemDataRole.ToolTipRole:
            return spec.tooltip if spec.sort else spec.tooltip + " (not sortable)"
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sorting re-runs the query in SQL; a column without a queue sort is ignored."""
        if not 0 <= column < len(Column):
            return
        sort = COLUMNS[Column(column)].sort
        if sort is None:
            return
        descending = order == Qt.SortOrder.DescendingOrder
        if sort == self._query.sort and descending == self._query.descending and self._generation:
            return
        self.set_query(replace(self._query, sort=sort, descending=descending))

    @Slot()
    def cancel_pending(self) -> None:
        """Drop whatever is in flight (the window is closing)."""
        self._generation += 1
        self._runner.cancel_all()
        self._pending = None
