"""The Dashboard page: a card per status with its count, each opening the list filtered to it, and the
charts of how it is going below them (``ui/pages/charts.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal, SignalInstance, Slot
from PySide6.QtGui import QColor, QIcon, QMouseEvent
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session, sessionmaker

from writeback_console.domain import Status, utcnow
from writeback_console.store import listing
from writeback_console.store.engine import QueryStop, read_session
from writeback_console.store.listing import WritebackFilter
from writeback_console.ui.pages.charts import ChartsPanel
from writeback_console.ui.resources import IconLabel, icon
from writeback_console.ui.status_style import status_color, status_icon
from writeback_console.ui.tasks import Task, TaskGroup, TaskRunner

Factory = sessionmaker[Session]

#: Status cards side by side on the dashboard: seven statuses fit in two rows.
CARDS_PER_ROW = 4


@dataclass(frozen=True, slots=True)
class DashboardCounts:
    #: Per status (by value), and "retry_available" and "stuck".
    counts: dict[str, int]
    #: The keys whose count stopped at its cap ("2,000+").
    bounded: frozenset[str] = frozenset()


def dashboard_counts(factory: Factory, lease_seconds: int, stop: QueryStop | None = None) -> DashboardCounts:
    """Per-status counts (the totals the database keeps: exact, constant time) and the two "needs a
    person" counts (counted up to a cap); runs on a worker thread."""
    with read_session(factory, stop) as session:
        counts: dict[str, int] = {s.value: n for s, n in listing.count_by_status(session).items()}
        bounded: set[str] = set()
        for key, flt, status in (
            ("retry_available", WritebackFilter(retry_available=True), Status.ERROR),
            ("stuck", WritebackFilter(stuck_before=utcnow()), Status.PROCESSING),
        ):
            found = listing.bounded_counts(session, flt)
            counts[key] = found.counts[status]
            if found.bounded:
                bounded.add(key)
    return DashboardCounts(counts, frozenset(bounded))


def error_color() -> QColor:
    """The attention cards' colour: the exhausted Error's, on the palette in use."""
    return status_color(Status.ERROR)


class StatusCard(QFrame):
    """A clickable card with an icon, a count and what it counts."""

    def __init__(self, title: str, symbol_icon: QIcon, on_click: Callable[[], None]) -> None:
        super().__init__()
        self.setObjectName("statusCard")
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self._on_click = on_click
        self.symbol = symbol = IconLabel(symbol_icon, 28)
        self.count = QLabel("…")
        self.count.setObjectName("cardCount")
        self.title = QLabel(title)
        self.title.setWordWrap(True)
        self.open_button = QPushButton("Show")
        self.open_button.setToolTip(f"Open the Writeback List filtered to {title}")
        self.open_button.clicked.connect(self._clicked)
        top = QHBoxLayout()
        top.addWidget(symbol)
        top.addWidget(self.count, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.title)
        layout.addWidget(self.open_button, 0, Qt.AlignmentFlag.AlignRight)

    @Slot()
    def _clicked(self) -> None:
        self._on_click()

    def set_count(self, count: int | None, *, bounded: bool = False) -> None:
        """The count, "…" while it is read, with "+" when counting stopped at its cap."""
        self.count.setText("…" if count is None else f"{count:,}{'+' if bounded else ''}")

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._on_click()


class DashboardPage(QWidget):
    """Per-status counts as cards; a card opens the list filtered to it.

    Signals:
        status_clicked(object): a status card was clicked (a ``Status``).
        attention_clicked(str): "retry_available" or "stuck" was clicked.
        bar_clicked(object): a bar of the sent and failed chart was clicked (a ``charts.BarPick``).
    """

    status_clicked = Signal(object)
    attention_clicked = Signal(str)
    bar_clicked = Signal(object)

    def __init__(self, factory: Factory, runner: TaskRunner, lease_seconds: int) -> None:
        super().__init__()
        self._factory = factory
        self._runner = TaskGroup(self, runner)
        self._lease_seconds = lease_seconds
        self._task: Task | None = None
        self.cards: dict[str, StatusCard] = {}

        title = QLabel("Dashboard")
        title.setObjectName("pageTitle")
        self.note = QLabel("Writebacks in the queue by status.")
        self.grid = grid = QGridLayout()
        grid.setSpacing(12)
        for n, status in enumerate(Status):
            card = StatusCard(status.label, status_icon(status), self._emitter(self.status_clicked, status))
            self.cards[status.value] = card
            grid.addWidget(card, n // CARDS_PER_ROW, n % CARDS_PER_ROW)
        # The attention cards go below however many rows the statuses take.
        below = -(-len(Status) // CARDS_PER_ROW)
        attention = QLabel("Needs a person")
        attention.setObjectName("sectionTitle")
        grid.addWidget(attention, below, 0, 1, CARDS_PER_ROW)
        for n, (key, text, name) in enumerate(
            (
                ("retry_available", "Errors with automatic retries used up: retry by hand", "retry"),
                ("stuck", "Stuck in Processing: the dispatcher's lease ran out", "status-processing"),
            )
        ):
            card = StatusCard(text, icon(name, error_color), self._emitter(self.attention_clicked, key))
            self.cards[key] = card
            # Two columns each, so that their longer words do not widen the status columns above.
            grid.addWidget(card, below + 1, 2 * n, 1, 2)
        for column in range(CARDS_PER_ROW):
            grid.setColumnStretch(column, 1)
        self.charts = ChartsPanel(factory, runner)
        self.charts.bar_clicked.connect(self.bar_clicked)
        content = QWidget()
        content.setObjectName("dashboardContent")
        layout = QVBoxLayout(content)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.addWidget(title)
        layout.addWidget(self.note)
        layout.addLayout(grid)
        layout.addSpacing(12)
        layout.addWidget(self.charts, 1)
        # The cards and four charts are taller than a small screen: the page scrolls.
        self.scroller = QScrollArea()
        self.scroller.setObjectName("dashboardScroll")
        self.scroller.setWidgetResizable(True)
        self.scroller.setFrameShape(QFrame.Shape.NoFrame)
        self.scroller.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.scroller)

    @staticmethod
    def _emitter(signal: SignalInstance, value: object) -> Callable[[], None]:
        def emit() -> None:
            signal.emit(value)

        return emit

    @Slot()
    def refresh(self) -> None:
        if self._task is not None:
            self._task.cancel()
        stop = QueryStop()
        self._task = self._runner.submit(
            dashboard_counts,
            self._factory,
            self._lease_seconds,
            stop,
            stop=stop,
            on_done=self._show_counts,
            on_error=self._show_error,
        )
        self.charts.refresh()

    def _show_counts(self, found: DashboardCounts) -> None:
        self._task = None
        counts = found.counts
        for key, card in self.cards.items():
            card.set_count(counts.get(key, 0), bounded=key in found.bounded)
        self.note.setText(
            f"{sum(counts.get(s.value, 0) for s in Status):,} writebacks in the queue by status."
        )

    def _show_error(self, error: BaseException) -> None:
        self._task = None
        self.note.setText(f"The counts could not be read: {error}")
