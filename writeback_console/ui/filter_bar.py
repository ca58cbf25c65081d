"""The Writeback List's filter bar: statuses with live counts, kind, account, dates, text and flags."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from PySide6.QtCore import QDate, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateEdit,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from writeback_console.domain import DEFAULT_LEASE_SECONDS, Kind, Status, utcnow
from writeback_console.store.listing import COUNT_CAP, WritebackFilter
from writeback_console.ui import keyboard
from writeback_console.ui.flow_layout import FlowLayout
from writeback_console.ui.resources import icon
from writeback_console.ui.status_style import status_icon

#: Filter-as-you-type waits this long after the last key before it queries.
TEXT_THROTTLE_MS = 300
ALL_ACCOUNTS_LABEL = "All accounts"


def local_midnight_utc(day: date) -> datetime:
    """The start of ``day`` in the user's time zone, as the UTC instant the database compares with."""
    return datetime.combine(day, time()).astimezone().astimezone(UTC)


def period_words(start: datetime, end: datetime) -> str:
    """An hour or a day of a chart in local time: "30 Nov 14:00–15:00", "30 Nov"."""
    local_start, local_end = start.astimezone(), end.astimezone()
    if end - start <= timedelta(hours=1):
        return f"{local_start:%d %b %H:%M}–{local_end:%H:%M}"
    if local_start.time() == time() and local_end.time() == time() and end - start <= timedelta(hours=25):
        return f"{local_start:%d %b}"
    return f"{local_start:%d %b %H:%M} – {local_end:%d %b %H:%M}"


def to_date(day: QDate) -> date:
    return date(day.year(), day.month(), day.day())


def day_range_edits(
    from_text: str, toggled: Callable[..., object], date_changed: Callable[..., object]
) -> tuple[QCheckBox, QDateEdit, QCheckBox, QDateEdit]:
    """A day range as (from box, from day, to box, to day): each end off until ticked, the last week at
    first; ``toggled`` is told of a tick, ``date_changed`` of a day picked."""
    today = QDate.currentDate()
    from_check, from_date = QCheckBox(from_text), QDateEdit(today.addDays(-7))
    to_check, to_date_edit = QCheckBox("to"), QDateEdit(today)
    for check, edit in ((from_check, from_date), (to_check, to_date_edit)):
        edit.setCalendarPopup(True)
        edit.setDisplayFormat("yyyy-MM-dd")
        edit.setEnabled(False)
        check.toggled.connect(edit.setEnabled)
        check.toggled.connect(toggled)
        edit.dateChanged.connect(date_changed)
    return from_check, from_date, to_check, to_date_edit


class FilterBar(QFrame):
    """Every filter of the Writeback List; ``build_filter()`` turns them into a ``WritebackFilter``.

    Signals:
        filter_changed(): the user (or a setter) changed a filter; text changes arrive throttled.
        exact_count_requested(): "Count exactly" was pressed (the counts had stopped at their cap).
    """

    filter_changed = Signal()
    exact_count_requested = Signal()

    def __init__(self, lease_seconds: int = DEFAULT_LEASE_SECONDS, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("filterBar")
        self.lease_seconds = lease_seconds
        self._quiet = 0

        self.search = QLineEdit()
        self.search.setObjectName("search")
        self.search.setPlaceholderText("Search email, ref, constituent id or mailing name   (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.addAction(icon("search"), QLineEdit.ActionPosition.LeadingPosition)
        self.search.setMinimumWidth(200)
        self.search.setMaxLength(320)

        self.text_throttle = QTimer(self)
        self.text_throttle.setObjectName("text_throttle")
        self.text_throttle.setSingleShot(True)
        self.text_throttle.setInterval(TEXT_THROTTLE_MS)
        self.text_throttle.timeout.connect(self._text_settled)
        self.search.textChanged.connect(self._text_edited)
        self.search.returnPressed.connect(self._text_settled)

        self.error_text = QLineEdit()
        self.error_text.setObjectName("errorText")
        self.error_text.setPlaceholderText("Error contains…")
        self.error_text.setToolTip(
            "Only writebacks whose last error contains this text, in any case; … or * stands for "
            "anything (as in a Top errors group)"
        )
        self.error_text.setClearButtonEnabled(True)
        self.error_text.setFixedWidth(170)
        self.error_text.setMaxLength(200)
        self.error_text.textChanged.connect(self._text_edited)
        self.error_text.returnPressed.connect(self._text_settled)

        self.kind_button = QToolButton()
        self.kind_button.setObjectName("kindFilter")
        self.kind_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.kind_button.setToolTip("Show only these writeback elements")
        kind_menu = QMenu(self.kind_button)
        self.kind_actions: dict[Kind, QAction] = {}
        for kind in Kind:
            action = kind_menu.addAction(kind.label)
            action.setCheckable(True)
            action.toggled.connect(self._kinds_toggled)
            self.kind_actions[kind] = action
        kind_menu.addSeparator()
        kind_menu.addAction("All kinds").triggered.connect(self._all_kinds)
        self.kind_button.setMenu(kind_menu)

        self.account = QComboBox()
        self.account.setObjectName("accountFilter")
        self.account.setToolTip("Informz account")
        self.account.addItem(ALL_ACCOUNTS_LABEL)
        self.account.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.account.currentIndexChanged.connect(self._changed)

        self.from_check, self.from_date, self.to_check, self.to_date = day_range_edits(
            "Created from", self._changed, self._date_changed
        )
        self.from_check.setToolTip("Only writebacks queued on or after this day (local time)")
        self.to_check.setToolTip("Only writebacks queued on or before this day (local time)")

        self.status_buttons: dict[Status, QToolButton] = {}
        for status in Status:
            button = QToolButton()
            button.setObjectName("statusToggle")
            button.setCheckable(True)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            button.setIcon(status_icon(status))
            button.setText(status.label)
            button.setToolTip(f"Show {status.label} writebacks (several statuses can be on at once)")
            button.toggled.connect(self._changed)
            self.status_buttons[status] = button

        self.retried = QCheckBox("Retried")
        self.retried.setToolTip("Only writebacks tried more than once (attempts > 1)")
        self.stuck = QCheckBox("Stuck in Processing")
        self.stuck.setToolTip("Processing rows whose dispatcher lease ran out: the dispatcher probably died")
        self.retry_available = QCheckBox("Retry available")
        self.retry_available.setToolTip(
            "Error rows whose automatic retries are used up: only a person can retry"
        )
        for box in (self.retried, self.stuck, self.retry_available):
            box.toggled.connect(self._changed)

        # A chart's bar: rows that reached a status (or failed an attempt) in an hour or day; shown while
        # it filters, and removed by clicking it.
        self.period: tuple[Status, datetime, datetime] | None = None
        self.period_chip = QToolButton()
        self.period_chip.setObjectName("periodFilter")
        self.period_chip.setIcon(icon("close"))
        self.period_chip.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.period_chip.setVisible(False)
        self.period_chip.clicked.connect(self.clear_period)

        self.clear_button = QToolButton()
        self.clear_button.setText("Clear filters")
        self.clear_button.setToolTip("Show every writeback")
        self.clear_button.clicked.connect(self.clear)

        self.exact_count = QToolButton()
        self.exact_count.setObjectName("exactCount")
        self.exact_count.setText("Count exactly")
        self.exact_count.setToolTip(
            f"More than {COUNT_CAP:,} writebacks match: the counts stopped there (shown with +). "
            "Count every matching row, however long it takes"
        )
        self.exact_count.setVisible(False)
        self.exact_count.clicked.connect(self.exact_count_requested)

        self.summary = QLabel()
        self.summary.setObjectName("listSummary")
        # Its text grows with the counts; it must not widen the window's minimum (1,024 px screens).
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.summary.setMinimumWidth(120)
        self.summary.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.search, 1)
        top.addWidget(self.kind_button)
        top.addWidget(self.account)
        top.addSpacing(8)
        top.addWidget(self.from_check)
        top.addWidget(self.from_date)
        top.addWidget(self.to_check)
        top.addWidget(self.to_date)

        # Eight statuses with their counts are wider than a small screen: they wrap onto a second line.
        statuses = FlowLayout(spacing=4)
        statuses.setContentsMargins(0, 0, 0, 0)
        for button in self.status_buttons.values():
            statuses.addWidget(button)

        flags = QHBoxLayout()
        flags.setContentsMargins(0, 0, 0, 0)
        flags.addWidget(self.retried)
        flags.addWidget(self.stuck)
        flags.addWidget(self.retry_available)
        flags.addWidget(self.error_text)
        flags.addWidget(self.period_chip)
        flags.addWidget(self.clear_button)
        flags.addWidget(self.exact_count)
        flags.addWidget(self.summary, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 6)
        layout.setSpacing(6)
        layout.addLayout(top)
        layout.addLayout(statuses)
        layout.addLayout(flags)
        self._update_kind_text()
        # Tab in reading order, each row of toggles one step (arrow keys within it): a few steps to the list.
        self.tab_chain = keyboard.tab_in_layout_order(self)
        keyboard.roving_focus(self.status_buttons.values())
        keyboard.roving_focus((self.retried, self.stuck, self.retry_available, self.clear_button))

    # --- reading ---------------------------------------------------------------------------------

    def build_filter(self, now: datetime | None = None) -> WritebackFilter:
        """The filter the widgets describe; "stuck" is measured from ``now``."""
        now = now or utcnow()
        account = self.account.currentText()
        text = self.search.text().strip()
        return WritebackFilter(
            statuses=frozenset(s for s, b in self.status_buttons.items() if b.isChecked()),
            kinds=frozenset(k for k, a in self.kind_actions.items() if a.isChecked()),
            accounts=frozenset({account}) if self.account.currentIndex() > 0 and account else frozenset(),
            created_from=local_midnight_utc(to_date(self.from_date.date()))
            if self.from_check.isChecked()
            else None,
            created_to=local_midnight_utc(to_date(self.to_date.date()) + timedelta(days=1))
            if self.to_check.isChecked()
            else None,
            text=text or None,
            retried=self.retried.isChecked(),
            stuck_before=now if self.stuck.isChecked() else None,
            retry_available=self.retry_available.isChecked(),
            error_text=self.error_text.text().strip() or None,
            **self._period_filter(),
        )

    def _period_filter(self) -> dict[str, Any]:
        if self.period is None:
            return {}
        status, start, end = self.period
        if status is Status.ERROR:  # the charts count failed attempts, not rows reaching Error
            return {"failed_from": start, "failed_to": end}
        return {"reached": status, "reached_from": start, "reached_to": end}

    def selected_statuses(self) -> frozenset[Status]:
        return frozenset(s for s, b in self.status_buttons.items() if b.isChecked())

    # --- counts ----------------------------------------------------------------------------------

    def set_counts(self, counts: Mapping[Status, int] | None, *, bounded: bool = False) -> None:
        """Show how many rows each status has under the other filters (None: being counted).

        ``bounded``: counting stopped at its cap, so each is "at least" (1,912+), and "Count exactly"
        is offered.
        """
        for status, button in self.status_buttons.items():
            if counts is None:
                button.setText(f"{status.label}  …")
            else:
                n = counts.get(status, 0)
                button.setText(f"{status.label}  {n:,}{'+' if bounded else ''}")
        self.exact_count.setVisible(counts is not None and bounded)

    def set_summary(self, text: str) -> None:
        self.summary.setText(text)

    # --- changing --------------------------------------------------------------------------------

    @contextmanager
    def _one_change(self) -> Iterator[None]:
        """Several setter calls announce a single change at the end."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1
        if not self._quiet:
            self.filter_changed.emit()

    def set_text(self, text: str) -> None:
        """Search for ``text`` at once (no throttle: the caller is not typing)."""
        with self._one_change():
            self.search.blockSignals(True)
            self.search.setText(text)
            self.search.blockSignals(False)
            self.text_throttle.stop()

    def set_error_text(self, text: str | None) -> None:
        """Show only rows whose last error matches ``text`` (a Top errors reason), at once."""
        with self._one_change():
            self.error_text.blockSignals(True)
            self.error_text.setText(text or "")
            self.error_text.blockSignals(False)
            self.text_throttle.stop()

    def set_period(self, status: Status, start: datetime, end: datetime) -> None:
        """Show only rows sent (``status`` Sent) or with a failed attempt (Error) from ``start`` up to
        ``end``: a bar of the dashboard's charts."""
        with self._one_change():
            self.period = (status, start, end)
            what = "Failed an attempt" if status is Status.ERROR else f"Became {status.label}"
            self.period_chip.setText(f"{what} {period_words(start, end)}")
            did = "had an attempt fail" if status is Status.ERROR else f"became {status.label}"
            span = f"{start.astimezone():%Y-%m-%d %H:%M} up to {end.astimezone():%Y-%m-%d %H:%M}"
            self.period_chip.setToolTip(
                f"Only writebacks that {did} from {span} (local time). Click to remove this filter"
            )
            self.period_chip.setVisible(True)

    @Slot()
    def clear_period(self) -> None:
        with self._one_change():
            self.period = None
            self.period_chip.setVisible(False)

    def set_statuses(self, statuses: Iterable[Status]) -> None:
        wanted = set(statuses)
        with self._one_change():
            for status, button in self.status_buttons.items():
                button.setChecked(status in wanted)

    def set_kinds(self, kinds: Iterable[Kind]) -> None:
        wanted = set(kinds)
        with self._one_change():
            for kind, action in self.kind_actions.items():
                action.setChecked(kind in wanted)

    def add_accounts(self, names: Iterable[str]) -> None:
        """Offer these accounts in the account filter (the list grows as rows of new accounts show up)."""
        known = {self.account.itemText(i) for i in range(1, self.account.count())}
        fresh = sorted(set(names) - known)
        if not fresh:
            return
        current = self.account.currentText()
        self.account.blockSignals(True)
        everything = sorted(known | set(fresh))
        self.account.clear()
        self.account.addItem(ALL_ACCOUNTS_LABEL)
        self.account.addItems(everything)
        self.account.setCurrentIndex(max(0, self.account.findText(current)))
        self.account.blockSignals(False)

    def set_account(self, name: str | None) -> None:
        with self._one_change():
            self.account.blockSignals(True)
            if name is None:
                self.account.setCurrentIndex(0)
            else:
                self.add_accounts([name])
                self.account.setCurrentIndex(self.account.findText(name))
            self.account.blockSignals(False)

    def set_created_range(self, start: date | None, end: date | None) -> None:
        with self._one_change():
            self.from_check.setChecked(start is not None)
            self.to_check.setChecked(end is not None)
            if start is not None:
                self.from_date.setDate(QDate(start.year, start.month, start.day))
            if end is not None:
                self.to_date.setDate(QDate(end.year, end.month, end.day))

    def set_flags(
        self, *, retried: bool | None = None, stuck: bool | None = None, retry_available: bool | None = None
    ) -> None:
        with self._one_change():
            for box, value in (
                (self.retried, retried),
                (self.stuck, stuck),
                (self.retry_available, retry_available),
            ):
                if value is not None:
                    box.setChecked(value)

    @Slot()
    def clear(self) -> None:
        with self._one_change():
            for edit in (self.search, self.error_text):
                edit.blockSignals(True)
                edit.clear()
                edit.blockSignals(False)
            self.text_throttle.stop()
            for button in self.status_buttons.values():
                button.setChecked(False)
            for action in self.kind_actions.values():
                action.setChecked(False)
            self.account.setCurrentIndex(0)
            self.from_check.setChecked(False)
            self.to_check.setChecked(False)
            for box in (self.retried, self.stuck, self.retry_available):
                box.setChecked(False)
            self.clear_period()

    @Slot()
    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    # --- slots -----------------------------------------------------------------------------------

    @Slot()
    def _changed(self) -> None:
        if not self._quiet:
            self.filter_changed.emit()

    @Slot(str)
    def _text_edited(self, _text: str) -> None:
        # Restarting the single-shot timer on every key means one query once the user pauses.
        self.text_throttle.start()

    @Slot()
    def _text_settled(self) -> None:
        self.text_throttle.stop()
        self._changed()

    @Slot(QDate)
    def _date_changed(self, _date: QDate) -> None:
        if self.from_check.isChecked() or self.to_check.isChecked():
            self._changed()

    @Slot(bool)
    def _kinds_toggled(self, _checked: bool) -> None:
        self._update_kind_text()
        self._changed()

    @Slot()
    def _all_kinds(self) -> None:
        self.set_kinds(())

    def _update_kind_text(self) -> None:
        chosen = [k for k, a in self.kind_actions.items() if a.isChecked()]
        if not chosen:
            self.kind_button.setText("Kind: all")
        elif len(chosen) == 1:
            self.kind_button.setText(f"Kind: {chosen[0].label}")
        else:
            self.kind_button.setText(f"Kind: {len(chosen)} chosen")
