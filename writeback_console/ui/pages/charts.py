"""The dashboard's charts: sent and failed per hour or day, failures by reason, the queue's depth and the
age of its oldest waiting writeback, drawn with QtCharts in the palette in use.

QtCharts is Qt's own module (same release and licence as the rest of PySide6): bar, stacked bar and
line series with a legend, category axes, and ``QBarSet.clicked`` for opening the list at a bar.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from PySide6.QtCharts import (
    QBarSeries,
    QBarSet,
    QCategoryAxis,
    QChart,
    QChartView,
    QLineSeries,
    QStackedBarSeries,
    QValueAxis,
)
from PySide6.QtCore import QEvent, QMargins, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QColor, QFont, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QButtonGroup,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session, sessionmaker

from writeback_console.domain import Status, utcnow
from writeback_console.store import charts
from writeback_console.store.charts import Bucket, Charts, Period
from writeback_console.store.engine import QueryStop, read_session
from writeback_console.ui import theme
from writeback_console.ui.status_style import status_color
from writeback_console.ui.tasks import Task, TaskGroup, TaskRunner
from writeback_console.ui.theme import Scheme

Factory = sessionmaker[Session]
#: The charts are read at most this often, however busy the change feed is.
REFRESH_SECONDS = 5.0
#: Reason names in a legend are cut here (the whole reason is the bar's tooltip).
LEGEND_CHARS = 38
#: The reasons' colours, distinct from each other and from the status colours' meanings; "other" grey.
REASON_COLORS: dict[Scheme, tuple[str, ...]] = {
    Scheme.LIGHT: ("#c62828", "#ef6c00", "#6a1b9a", "#1565c0", "#00838f", "#8d8d8d"),
    Scheme.DARK: ("#ef5350", "#ffa726", "#ce93d8", "#64b5f6", "#4dd0e1", "#9e9e9e"),
}
FAILED_LABEL = "Failed attempts"
SENT_LABEL = "Sent"


@dataclass(frozen=True, slots=True)
class BarPick:
    """A bar that was clicked: the writebacks sent (``status`` Sent) or with a failed attempt
    (``status`` Error) in ``period``."""

    status: Status
    period: Period


def read_charts(factory: Factory, bucket: Bucket, stop: QueryStop | None = None) -> Charts:
    """Everything the charts draw; runs on a worker thread."""
    with read_session(factory, stop) as session:
        return charts.read_charts(session, utcnow(), bucket, charts.local_zone())


def age_text(seconds: float) -> str:
    """An age as a person reads it: "45 s", "12 min", "3 h 05 min", "2 d 4 h"."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def bar_label(period: Period, bucket: Bucket) -> str:
    local = period.start.astimezone()
    return local.strftime("%H") if bucket == "hour" else local.strftime("%d")


def _span_text(bars: list[Period], bucket: Bucket) -> str:
    if not bars:
        return ""
    first, last = bars[0].start.astimezone(), (bars[-1].end - timedelta(seconds=1)).astimezone()
    if bucket == "hour":
        return f"{first:%d %b %H:00} – {last:%d %b %H:59}, local time"
    return f"{first:%d %b %Y} – {last:%d %b %Y}, local days"


class ChartBox(QChartView):
    """One chart, styled from the palette in use."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        self.plot = QChart()
        super().__init__(self.plot, parent)
        self.plot.setTitle(title)
        self.plot.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        self.plot.setMargins(QMargins(4, 4, 4, 4))
        self.plot.setAnimationOptions(QChart.AnimationOption.NoAnimation)
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setMinimumHeight(270)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def clear(self) -> None:
        self.plot.removeAllSeries()
        for axis in self.plot.axes():
            self.plot.removeAxis(axis)

    def restyle(self) -> None:
        """Background, title, axes, grid and legend in the palette's colours."""
        palette = self.palette()
        text = palette.color(QPalette.ColorRole.WindowText)
        base = palette.color(QPalette.ColorRole.Base)
        grid = palette.color(QPalette.ColorRole.Mid)
        self.plot.setBackgroundBrush(base)
        self.plot.setBackgroundPen(QPen(grid))
        self.plot.setTitleBrush(text)
        title_font = QFont(self.font())
        title_font.setBold(True)
        self.plot.setTitleFont(title_font)
        self.plot.legend().setLabelColor(text)
        self.setBackgroundBrush(palette.color(QPalette.ColorRole.Window))
        for axis in self.plot.axes():
            axis.setLabelsColor(text)
            axis.setTitleBrush(text)
            axis.setLinePenColor(grid)
            axis.setGridLineColor(grid)
            axis.setLabelsFont(self.font())
            axis.setTitleFont(self.font())


class ChartsPanel(QWidget):
    """The four charts and the toggle between 24 hours and 30 days.

    Signals:
        bar_clicked(object): a bar of "Sent and failed" was clicked (a ``BarPick``).
    """

    bar_clicked = Signal(object)

    def __init__(self, factory: Factory, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._factory = factory
        self._runner = TaskGroup(self, runner)
        self._task: Task | None = None
        self._read_at = 0.0
        self.bucket: Bucket = "hour"
        self.shown: Charts | None = None

        self.later = QTimer(self)
        self.later.setObjectName("charts_refresh")
        self.later.setSingleShot(True)
        self.later.timeout.connect(self.refresh_now)

        title = QLabel("How it is going")
        title.setObjectName("sectionTitle")
        self.hours_button = QToolButton()
        self.hours_button.setText("Last 24 hours")
        self.days_button = QToolButton()
        self.days_button.setText("Last 30 days")
        self.period_buttons = QButtonGroup(self)
        for button in (self.hours_button, self.days_button):
            button.setCheckable(True)
            self.period_buttons.addButton(button)
        self.hours_button.setChecked(True)
        self.hours_button.setToolTip("Per hour over the last 24 hours")
        self.days_button.setToolTip("Per day over the last 30 days (local days)")
        self.hours_button.toggled.connect(self._bucket_toggled)
        self.note = QLabel("…")
        self.note.setObjectName("chartsNote")
        self.note.setWordWrap(True)

        self.oldest_value = QLabel("…")
        self.oldest_value.setObjectName("cardCount")
        self.oldest_caption = QLabel(
            "Age of the oldest waiting writeback (New, due Scheduled, Error with retries left)"
        )
        self.oldest_caption.setWordWrap(True)

        self.sent_failed = ChartBox("Sent and failed")
        self.reasons = ChartBox("Failed attempts by reason")
        self.depth_chart = ChartBox("Queue depth (as each dispatcher run began)")
        self.age = ChartBox("Oldest waiting writeback's age")
        self.empty = QLabel()
        self.empty.setObjectName("chartsEmpty")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.hide()

        head = QHBoxLayout()
        head.addWidget(title)
        head.addStretch(1)
        head.addWidget(self.hours_button)
        head.addWidget(self.days_button)
        oldest = QVBoxLayout()
        oldest.addWidget(self.oldest_value)
        oldest.addWidget(self.oldest_caption)
        oldest.addStretch(1)
        oldest_box = QWidget()
        oldest_box.setLayout(oldest)
        oldest_box.setFixedWidth(200)
        grid = QGridLayout()
        grid.setSpacing(8)
        grid.addWidget(self.sent_failed, 0, 0, 1, 2)
        grid.addWidget(self.empty, 1, 0, 1, 2)
        grid.addWidget(self.reasons, 2, 0)
        grid.addWidget(self.depth_chart, 2, 1)
        age_row = QHBoxLayout()
        age_row.addWidget(oldest_box)
        age_row.addWidget(self.age, 1)
        grid.addLayout(age_row, 3, 0, 1, 2)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(head)
        layout.addWidget(self.note)
        layout.addLayout(grid)
        self._restyle()

    # --- reading ---------------------------------------------------------------------------------

    @Slot()
    def refresh(self) -> None:
        """Read the charts again, at most once every ``REFRESH_SECONDS``: a busy change feed asks often."""
        wait = REFRESH_SECONDS - (time.monotonic() - self._read_at)
        if wait > 0:
            if not self.later.isActive():
                self.later.start(int(wait * 1000))
            return
        self.refresh_now()

    @Slot()
    def refresh_now(self) -> None:
        self.later.stop()
        if self._task is not None:
            self._task.cancel()
        self._read_at = time.monotonic()
        stop = QueryStop()
        self._task = self._runner.submit(
            read_charts,
            self._factory,
            self.bucket,
            stop,
            stop=stop,
            on_done=self._show,
            on_error=self._failed,
        )

    @Slot(bool)
    def _bucket_toggled(self, hours: bool) -> None:
        self.bucket = "hour" if hours else "day"
        self.refresh_now()

    def _failed(self, error: BaseException) -> None:
        self._task = None
        self.note.setText(f"The charts could not be read: {error}")
        theme.set_tone(self.note, "error")

    # --- drawing ---------------------------------------------------------------------------------

    def _show(self, found: Charts) -> None:
        self._task = None
        self.shown = found
        theme.set_tone(self.note, None)
        data = found.sent_and_failed
        text = (
            f"{_span_text(data.bars, found.bucket)}: {sum(data.sent):,} sent, "
            f"{sum(data.failed):,} failed attempts. Click a bar to list those writebacks."
        )
        if data.uncounted is not None:
            zone = charts.local_zone()
            start, end = (moment.astimezone(zone) for moment in data.uncounted)
            text += (
                f" Not counted yet: {start:%d %b %H:%M} to {end:%d %b %H:%M} (a dispatcher counts a week of "
                "past hours at the end of each run)."
            )
            theme.set_tone(self.note, "notice")
        self.note.setText(text)
        self._draw(found)

    def _draw(self, found: Charts) -> None:
        labels = [bar_label(p, found.bucket) for p in found.sent_and_failed.bars]
        per = "/ hour" if found.bucket == "hour" else "/ day"
        self._draw_sent_failed(found, labels, per)
        self._draw_reasons(found, labels, per)
        self._draw_depth(found, labels)
        self._draw_age(found, labels)
        self._restyle()

    def _category_axis(self, box: ChartBox, labels: list[str], title: str, wide: bool) -> QCategoryAxis:
        """The bars' axis: bar i stands at i; every few bars named (as many as fit the chart's width)."""
        axis = QCategoryAxis()
        axis.setRange(-0.5, len(labels) - 0.5)
        axis.setLabelsPosition(QCategoryAxis.AxisLabelsPosition.AxisLabelsPositionOnValue)
        step = (2 if len(labels) <= 24 else 3) if wide else (4 if len(labels) <= 24 else 6)
        seen: set[str] = set()
        for i in range(0, len(labels), step):
            label = labels[i]
            while label in seen:  # each label names one place: a day number may come twice in 30 days
                label += "\u200b"
            seen.add(label)
            axis.append(label, i)
        axis.setTitleText(title)
        axis.setGridLineVisible(False)
        box.plot.addAxis(axis, Qt.AlignmentFlag.AlignBottom)
        return axis

    def _value_axis(self, box: ChartBox, title: str, top: float, decimals: int = 0) -> QValueAxis:
        axis = QValueAxis()
        axis.setTitleText(title)
        axis.setRange(0, max(top, 1.0 if decimals else 4.0))
        axis.setLabelFormat(f"%.{decimals}f")
        axis.setTickCount(5)
        axis.applyNiceNumbers()
        box.plot.addAxis(axis, Qt.AlignmentFlag.AlignLeft)
        return axis

    def _time_title(self, found: Charts) -> str:
        return "hour of the day (local time)" if found.bucket == "hour" else "day of the month (local)"

    def _draw_sent_failed(self, found: Charts, labels: list[str], per: str) -> None:
        box, data = self.sent_failed, found.sent_and_failed
        box.clear()
        when = "in the last 24 hours" if found.bucket == "hour" else "in the last 30 days"
        self.empty.setText(f"No sends or failures {when}")
        self.empty.setVisible(data.empty)
        box.setToolTip("Click a bar to open the list of those writebacks")
        sent, failed = QBarSet(SENT_LABEL), QBarSet(f"{FAILED_LABEL} (Error)")
        sent.append([float(n) for n in data.sent])
        failed.append([float(n) for n in data.failed])
        sent.setColor(status_color(Status.SENT))
        failed.setColor(status_color(Status.ERROR))
        for bar_set, status in ((sent, Status.SENT), (failed, Status.ERROR)):
            bar_set.setBorderColor(Qt.GlobalColor.transparent)
            bar_set.clicked.connect(self._clicker(status))
            bar_set.hovered.connect(self._hover(box, bar_set.label(), bar_set, data.bars, found.bucket))
        series = QBarSeries()
        series.setBarWidth(0.8)
        series.append([sent, failed])
        box.plot.addSeries(series)
        series.attachAxis(self._category_axis(box, labels, self._time_title(found), wide=True))
        top = max([*data.sent, *data.failed, 1])
        series.attachAxis(self._value_axis(box, f"writebacks {per}", top))
        box.setCursor(Qt.CursorShape.PointingHandCursor)

    def _clicker(self, status: Status) -> Callable[[int], None]:
        def clicked(index: int) -> None:
            if self.shown is None:
                return
            bars = self.shown.sent_and_failed.bars
            if 0 <= index < len(bars):
                self.bar_clicked.emit(BarPick(status, bars[index]))

        return clicked

    @staticmethod
    def _hover(
        box: ChartBox, name: str, bar_set: QBarSet, bars: list[Period], bucket: Bucket
    ) -> Callable[[bool, int], None]:
        """The bar under the pointer becomes the chart's tooltip: what it counts, how many, when."""
        resting = box.toolTip()

        def hovered(state: bool, index: int) -> None:
            if state and 0 <= index < len(bars):
                n = int(bar_set.at(index))
                box.setToolTip(f"{name}: {n:,}\n{_period_text(bars[index], bucket)}")
            else:
                box.setToolTip(resting)

        return hovered

    def _draw_reasons(self, found: Charts, labels: list[str], per: str) -> None:
        box, data = self.reasons, found.reasons
        box.clear()
        series = QStackedBarSeries()
        series.setBarWidth(0.8)
        colors = REASON_COLORS[theme.current().scheme]
        box.setToolTip("\n".join(data.reasons) if data.reasons else "No failed attempts")
        for n, reason in enumerate(data.reasons):
            short = reason if len(reason) <= LEGEND_CHARS else reason[: LEGEND_CHARS - 1] + "…"
            bar_set = QBarSet(short)
            bar_set.append([float(v) for v in data.counts[reason]])
            color = colors[-1] if reason == charts.OTHER else colors[n % (len(colors) - 1)]
            bar_set.setColor(QColor(color))
            bar_set.setBorderColor(Qt.GlobalColor.transparent)
            bar_set.hovered.connect(self._hover(box, reason, bar_set, data.bars, found.bucket))
            series.append(bar_set)
        box.plot.addSeries(series)
        series.attachAxis(self._category_axis(box, labels, self._time_title(found), wide=False))
        totals = [sum(c[i] for c in data.counts.values()) for i in range(len(data.bars))]
        series.attachAxis(self._value_axis(box, f"failures {per}", max([*totals, 1])))

    def _draw_depth(self, found: Charts, labels: list[str]) -> None:
        box, data = self.depth_chart, found.depth
        box.clear()
        lines: tuple[tuple[str, Status, bool, str], ...] = (
            ("New", Status.NEW, False, "new"),
            ("Scheduled, due", Status.SCHEDULED, False, "scheduled"),
            ("Error, retries left", Status.ERROR, True, "error"),
        )
        top = max([s.waiting for s in data.samples if s is not None] + [1])
        axis_x = self._category_axis(box, labels, self._time_title(found), wide=False)
        axis_y = self._value_axis(box, "writebacks waiting", top)
        for name, status, retrying, value in lines:
            series = QLineSeries()
            series.setName(name)
            for i, sample in enumerate(data.samples):
                if sample is not None:
                    series.append(float(i), float(getattr(sample, value)))
            pen = QPen(status_color(status, retries_remain=retrying))
            pen.setWidthF(2.0)
            series.setPen(pen)
            series.setPointsVisible(len(data.samples) <= 30)
            box.plot.addSeries(series)
            series.attachAxis(axis_x)
            series.attachAxis(axis_y)
        box.setToolTip(
            "The queue is a state, not a change: each dispatcher run records it as it begins; each point "
            "is the last run of its hour or day"
            + ("" if not data.empty else ". No dispatcher run recorded the queue in this time")
        )

    def _draw_age(self, found: Charts, labels: list[str]) -> None:
        box, data = self.age, found.depth
        box.clear()
        oldest = found.oldest_waiting_at
        if oldest is None:
            self.oldest_value.setText("none waiting")
        else:
            self.oldest_value.setText(age_text((found.now - oldest).total_seconds()))
        ages = [
            (i, (s.at - s.oldest_waiting_at).total_seconds() / 3600)
            if s is not None and s.oldest_waiting_at is not None
            else (i, 0.0 if s is not None else None)
            for i, s in enumerate(data.samples)
        ]
        series = QLineSeries()
        series.setName("Age of the oldest waiting, as each run began")
        for i, hours in ages:
            if hours is not None:
                series.append(float(i), hours)
        pen = QPen(status_color(Status.PROCESSING))
        pen.setWidthF(2.0)
        series.setPen(pen)
        series.setPointsVisible(len(data.samples) <= 30)
        box.plot.addSeries(series)
        top = max([h for _i, h in ages if h is not None] + [1.0])
        series.attachAxis(self._category_axis(box, labels, self._time_title(found), wide=False))
        series.attachAxis(self._value_axis(box, "age in hours", top, decimals=1))

    # --- palette ---------------------------------------------------------------------------------

    def _restyle(self) -> None:
        for box in (self.sent_failed, self.reasons, self.depth_chart, self.age):
            box.restyle()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange):
            # The status and reason colours are the palette's own: draw again with them.
            if self.shown is not None:
                self._draw(self.shown)
            else:
                self._restyle()


def _period_text(period: Period, bucket: Bucket) -> str:
    start = period.start.astimezone()
    if bucket == "hour":
        return f"{start:%d %b %H:00}–{(period.end.astimezone()):%H:00} local time"
    return f"{start:%a %d %b %Y} (local day)"
