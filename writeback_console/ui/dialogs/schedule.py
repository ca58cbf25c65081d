"""The Schedule Mailing Activity dialog: choose a mailing, then send its activity now or at a set time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Literal

from PySide6.QtCore import QDateTime, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QButtonGroup,
    QDateTimeEdit,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session, sessionmaker

from writeback_console import operations
from writeback_console.confirmations import schedule_confirmation
from writeback_console.domain import Status, utcnow
from writeback_console.store import listing
from writeback_console.store.engine import read_session
from writeback_console.store.models import Mailing
from writeback_console.store.rows import QueueError, WritebackRow, current_actor
from writeback_console.ui.dialogs import TaskGroup, count_text, errors
from writeback_console.ui.status_style import NONE_TEXT, local_text, status_text
from writeback_console.ui.tasks import Task, TaskRunner
from writeback_console.ui.theme import set_tone

#: Filter-as-you-type waits this long after the last key before it queries.
SEARCH_DELAY_MS = 250
#: Statuses of an existing mailing activity that can still be moved to another time.
MOVABLE = frozenset({Status.SCHEDULED, Status.NEW})
#: Statuses of a mailing's latest activity after which it may be given new mailing activity.
SCHEDULABLE_AFTER = frozenset({Status.NO_REMOTE_RECIPIENTS, Status.CANCELLED})


def can_schedule(status: Status | None) -> bool:
    """Whether a mailing whose latest activity is in ``status`` (None: it has none) may be scheduled."""
    return status is None or status in SCHEDULABLE_AFTER


# --- work done off the GUI thread ----------------------------------------------------------------


def find_mailings(
    factory: sessionmaker[Session], text: str, include_id: int | None = None
) -> list[listing.MailingRow]:
    """Mailings whose name contains ``text``; ``include_id`` is always among them when it exists."""
    with read_session(factory) as session:
        rows = listing.list_mailings(session, text=text)
        if include_id is not None and all(r.id != include_id for r in rows):
            mailing = session.get(Mailing, include_id)
            if mailing is not None:
                # list_mailings has no id filter; its name is a search that is sure to find it.
                rows += [r for r in listing.list_mailings(session, text=mailing.name) if r.id == include_id]
        return rows


def confirm_cancel(parent: QWidget, mailing: listing.MailingRow) -> bool:
    """Ask before a Scheduled mailing activity is cancelled (the dialog and the Mailings page alike)."""
    when = f", scheduled for {local_text(mailing.scheduled_for)}" if mailing.scheduled_for else ""
    question = (
        f"Cancel the mailing activity {mailing.activity_ref} of “{mailing.name}”{when}?\n\n"
        "Nothing will be written to Personify360 for this mailing unless it is scheduled again."
    )
    return confirm(parent, "Cancel scheduled mailing activity", question)


def confirm_cancel_row(parent: QWidget, row: WritebackRow) -> bool:
    """Ask before a Scheduled mailing activity chosen in the Writeback List is cancelled."""
    name = row.payload.get("mailing_name")
    of = f" of “{name}”" if isinstance(name, str) and name else ""
    when = f", scheduled for {local_text(row.scheduled_for)}" if row.scheduled_for else ""
    question = (
        f"Cancel the mailing activity {row.ref}{of}{when}?\n\n"
        "Nothing will be written to Personify360 for this mailing unless it is scheduled again."
    )
    return confirm(parent, "Cancel scheduled mailing activity", question)


def activity_row(result: WritebackRow | operations.ScheduledActivity) -> WritebackRow:
    """The mailing-activity writeback from what an operation returned."""
    return result.row if isinstance(result, operations.ScheduledActivity) else result


def activity_id(result: WritebackRow | operations.ScheduledActivity) -> int:
    """The mailing-activity writeback's id from what an operation returned."""
    return activity_row(result).id


# --- shared widgets ------------------------------------------------------------------------------


def activity_text(row: listing.MailingRow) -> str:
    """The mailing's activity in a few words: ``◷ Scheduled 2026-11-21 08:00 · WB-…``."""
    if row.activity_status is None:
        return "none yet"
    text = status_text(row.activity_status)
    if row.activity_status is Status.SCHEDULED:
        text += f" for {local_text(row.scheduled_for)}"
    elif row.activity_status is Status.NEW:
        text += " (next run)"
    elif row.activity_status is Status.CANCELLED and row.scheduled_for is not None:
        text += f" (was due {local_text(row.scheduled_for)})"
    return f"{text} · {row.activity_ref}"


class MailingTable(QTreeWidget):
    """Mailings with sent date, recipients, recipients known in Personify360 and mailing activity."""

    COLUMNS = ("Mailing", "Account", "Sent", "Recipients", "In Personify360", "Mailing activity")
    NAME_WIDTH = 260

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(list(self.COLUMNS))
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(True)
        self.setAllColumnsShowFocus(True)
        self.header().setStretchLastSection(True)
        self._rows: dict[int, listing.MailingRow] = {}

    def set_mailings(self, rows: list[listing.MailingRow], keep_id: int | None = None) -> None:
        """Show ``rows``, keeping (or moving to) the mailing ``keep_id`` selected."""
        keep = keep_id if keep_id is not None else self.current_id()
        self.blockSignals(True)
        self.clear()
        self._rows = {r.id: r for r in rows}
        chosen: QTreeWidgetItem | None = None
        for row in rows:
            item = QTreeWidgetItem(
                [
                    row.name,
                    row.account,
                    local_text(row.sent_at),
                    f"{row.recipients:,}",
                    f"{row.remote_recipients:,}",
                    activity_text(row),
                ]
            )
            item.setData(0, Qt.ItemDataRole.UserRole, row.id)
            item.setToolTip(0, row.name)
            item.setToolTip(5, item.text(5))
            for column in (3, 4):
                item.setTextAlignment(column, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.addTopLevelItem(item)
            if row.id == keep:
                chosen = item
        # Every column as wide as its text, the mailing activity too ("◷ Scheduled for … · WB-…"): the
        # last column still stretches to the edge when there is room, and the list scrolls when not.
        for column in range(len(self.COLUMNS)):
            self.resizeColumnToContents(column)
        # Long mailing names would push the counts off screen; the tooltip has the whole name.
        self.setColumnWidth(0, min(self.columnWidth(0), self.NAME_WIDTH))
        self.blockSignals(False)
        if chosen is not None:
            self.setCurrentItem(chosen)
            self.scrollToItem(chosen)
        else:
            # The old choice is gone: say so through the usual signal so that buttons follow.
            self.currentItemChanged.emit(None, None)

    def current_id(self) -> int | None:
        item = self.currentItem()
        return None if item is None else int(item.data(0, Qt.ItemDataRole.UserRole))

    def current_mailing(self) -> listing.MailingRow | None:
        wid = self.current_id()
        return None if wid is None else self._rows.get(wid)


def confirm(parent: QWidget | None, title: str, text: str) -> bool:
    """Ask a yes/no question modally (tests replace this function)."""
    answer = QMessageBox.question(
        parent,
        title,
        text,
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


def to_utc(value: QDateTime) -> datetime:
    """A local date and time from a QDateTimeEdit as an aware UTC datetime."""
    return datetime.fromtimestamp(value.toSecsSinceEpoch(), UTC)


def to_qdatetime(moment: datetime) -> QDateTime:
    return QDateTime.fromSecsSinceEpoch(int(moment.timestamp()))


def default_time() -> datetime:
    """The next full hour at least an hour ahead: a time that is in the future and easy to read."""
    ahead = datetime.now().astimezone() + timedelta(hours=1)
    return ahead.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


@dataclass(frozen=True)
class ScheduleOutcome:
    """What the dialog did: for the caller's status bar and list refresh."""

    action: Literal["scheduled", "rescheduled", "cancelled"]
    writeback_id: int
    #: The activity is to go now, on its own ("Send now"), rather than at a set time.
    send_now: bool
    #: The row's reference and when it is due now, for the confirmation (not part of what it did).
    ref: str = field(default="", compare=False)
    scheduled_for: datetime | None = field(default=None, compare=False)

    @classmethod
    def of(
        cls,
        action: Literal["scheduled", "rescheduled", "cancelled"],
        result: WritebackRow | operations.ScheduledActivity,
        send_now: bool,
    ) -> ScheduleOutcome:
        row = activity_row(result)
        due = None if send_now else row.scheduled_for
        return cls(action, row.id, send_now, ref=row.ref, scheduled_for=due)

    def confirmation(self) -> str:
        """``Rescheduled for Wed 2 Dec 09:00 (14:00 UTC) · WB-…``, or what a cancel did."""
        if self.action == "cancelled":
            return f"{self.ref} cancelled: nothing is written to Personify360 unless it is scheduled again"
        text = schedule_confirmation(self.action.capitalize(), self.scheduled_for)
        return f"{text} · {self.ref}" if self.ref else text


class ScheduleDialog(QDialog):
    """Schedule, send now, reschedule or cancel the mailing activity of one mailing, or schedule a
    cancelled one again.

    Signals:
        scheduled(int): the id of the mailing-activity writeback that was created or moved.
        cancelled(int): the id of the Scheduled writeback that was withdrawn (it stays, as Cancelled).
        send_requested(list): "Send now" was chosen for this writeback (its id, in a list): the caller sends
            it, and only it, at once.
    """

    scheduled = Signal(int)
    cancelled = Signal(int)
    send_requested = Signal(list)

    def __init__(
        self,
        factory: sessionmaker[Session],
        runner: TaskRunner,
        parent: QWidget | None = None,
        mailing_id: int | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Schedule Mailing Activity")
        self.resize(820, 600)
        self._factory = factory
        # Every result comes back through the group, which drops it once this widget is gone.
        self._runner = TaskGroup(self, runner)
        self._busy = False
        self._search_task: Task | None = None
        self.outcome: ScheduleOutcome | None = None

        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search mailings by name")
        self.search_edit.setClearButtonEnabled(True)
        self.search_timer = QTimer(self)
        self.search_timer.setObjectName("mailing_search_throttle")
        self.search_timer.setSingleShot(True)
        self.search_timer.setInterval(SEARCH_DELAY_MS)
        self.search_timer.timeout.connect(self.search)
        self.search_edit.textChanged.connect(self.search_timer.start)
        self.table = MailingTable()
        self.table.currentItemChanged.connect(self._mailing_changed)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(6)
        self.progress.hide()

        self.name_value = QLabel(NONE_TEXT)
        self.name_value.setWordWrap(True)
        self.sent_value = QLabel(NONE_TEXT)
        self.recipients_value = QLabel(NONE_TEXT)
        self.remote_value = QLabel(NONE_TEXT)
        self.activity_value = QLabel(NONE_TEXT)
        self.activity_value.setWordWrap(True)
        details = QGroupBox("Mailing")
        form = QFormLayout(details)
        form.addRow("Name:", self.name_value)
        form.addRow("Sent:", self.sent_value)
        form.addRow("Recipients:", self.recipients_value)
        # Our own table's figure, from when the mailing was recorded; Personify360 is asked when sending.
        form.addRow("Known in Personify360 when recorded:", self.remote_value)
        self.remote_value.setToolTip("Personify360 is not asked again until the activity is sent")
        form.addRow("Mailing activity:", self.activity_value)
        self.warning_label = QLabel()
        self.warning_label.setWordWrap(True)
        set_tone(self.warning_label, "notice")
        self.warning_label.hide()

        self.now_radio = QRadioButton("Send now (this mailing's activity only)")
        self.at_radio = QRadioButton("At")
        self.when_group = QButtonGroup(self)
        self.when_group.addButton(self.now_radio)
        self.when_group.addButton(self.at_radio)
        self.at_edit = QDateTimeEdit()
        self.at_edit.setCalendarPopup(True)
        self.at_edit.setDisplayFormat("yyyy-MM-dd HH:mm")
        self.at_edit.setDateTime(to_qdatetime(default_time()))
        self.at_utc_label = QLabel()
        self.at_utc_label.setEnabled(False)
        self.at_radio.setChecked(True)
        self.now_radio.toggled.connect(self._when_changed)
        self.at_edit.dateTimeChanged.connect(self._when_changed)
        when_box = QGroupBox("When")
        when_layout = QVBoxLayout(when_box)
        at_row = QHBoxLayout()
        at_row.addWidget(self.at_radio)
        at_row.addWidget(self.at_edit)
        at_row.addWidget(QLabel("local time"))
        at_row.addWidget(self.at_utc_label)
        at_row.addStretch(1)
        when_layout.addWidget(self.now_radio)
        when_layout.addLayout(at_row)
        self.when_box = when_box

        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        set_tone(self.error_label, "error")
        self.error_label.hide()

        self.buttons = QDialogButtonBox()
        self.ok_button = QPushButton("Schedule")
        self.ok_button.setDefault(True)
        self.buttons.addButton(self.ok_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_activity_button = QPushButton("Cancel scheduled activity…")
        self.buttons.addButton(self.cancel_activity_button, QDialogButtonBox.ButtonRole.ResetRole)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.ok_button.clicked.connect(self.submit)
        self.cancel_activity_button.clicked.connect(self.cancel_activity)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(self.search_edit)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.progress)
        layout.addWidget(details)
        layout.addWidget(self.warning_label)
        layout.addWidget(when_box)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)

        self._when_changed()
        self._mailing_changed()
        self.search(include_id=mailing_id)

    # -- searching ------------------------------------------------------------------------------

    @Slot()
    def search(self, include_id: int | None = None) -> None:
        """Query the mailings matching the search box; an older query still running is dropped."""
        if self._search_task is not None:
            self._search_task.cancel()
        self.progress.show()
        keep = include_id if include_id is not None else self.table.current_id()
        self._search_task = self._runner.submit(
            find_mailings,
            self._factory,
            self.search_edit.text(),
            include_id,
            on_done=lambda rows: self._show_mailings(rows, keep),
            on_error=self._failed,
        )

    def _show_mailings(self, rows: list[listing.MailingRow], keep: int | None) -> None:
        self._search_task = None
        self.progress.setVisible(self._busy)
        self.table.set_mailings(rows, keep)
        first = self.table.topLevelItem(0)
        if self.table.current_id() is None and len(rows) == 1 and first is not None:
            self.table.setCurrentItem(first)

    # -- the chosen mailing ---------------------------------------------------------------------

    @Slot()
    def _mailing_changed(self) -> None:
        mailing = self.table.current_mailing()
        self.error_label.hide()
        if mailing is None:
            for label in (self.name_value, self.sent_value, self.recipients_value, self.remote_value):
                label.setText(NONE_TEXT)
            self.activity_value.setText(NONE_TEXT)
            self.warning_label.hide()
            self._update_buttons()
            return
        self.name_value.setText(f"{mailing.name}  ({mailing.account}, id {mailing.id})")
        self.sent_value.setText(local_text(mailing.sent_at))
        self.recipients_value.setText(f"{mailing.recipients:,}")
        self.remote_value.setText(f"{mailing.remote_recipients:,}")
        self.activity_value.setText(activity_text(mailing))
        status = mailing.activity_status
        if status in MOVABLE and mailing.scheduled_for is not None:
            self.at_edit.setDateTime(to_qdatetime(mailing.scheduled_for))
            self.at_radio.setChecked(True)
        elif status is Status.NEW:
            self.now_radio.setChecked(True)
        elif status is Status.CANCELLED:
            # The cancelled time is offered again while it is still ahead.
            was = mailing.scheduled_for
            self.at_edit.setDateTime(to_qdatetime(was if was and was > utcnow() else default_time()))
            self.at_radio.setChecked(True)
        notes: list[str] = []
        if status is not None and not can_schedule(status) and status not in MOVABLE:
            notes.append(
                f"This mailing's activity {mailing.activity_ref} is {status.label}; it can no longer be "
                "scheduled. Retry it from the Writeback List if it failed."
            )
        else:
            if status is Status.CANCELLED:
                due = f" (it was due {local_text(mailing.scheduled_for)})" if mailing.scheduled_for else ""
                notes.append(
                    f"This mailing's activity {mailing.activity_ref} was cancelled{due}. Schedule it "
                    "again to send it; recipients whose activity already reached Personify360 are not "
                    "written twice."
                )
            if mailing.remote_recipients == 0:
                who = count_text(mailing.recipients, "recipient")
                notes.append(
                    f"None of this mailing's {who} is known in Personify360: its mailing activity will "
                    "end as No Remote Recipients and write nothing."
                )
        self.warning_label.setText("\n\n".join(notes))
        self.warning_label.setVisible(bool(notes))
        self._update_buttons()

    def _mode(self) -> Literal["none", "schedule", "reschedule", "final"]:
        mailing = self.table.current_mailing()
        if mailing is None:
            return "none"
        status = mailing.activity_status
        if can_schedule(status):
            return "schedule"
        return "reschedule" if status in MOVABLE else "final"

    @Slot()
    def _when_changed(self) -> None:
        self.at_edit.setEnabled(self.at_radio.isChecked())
        self.at_utc_label.setText(
            "= " + to_utc(self.at_edit.dateTime()).strftime("%Y-%m-%d %H:%M UTC")
            if self.at_radio.isChecked()
            else ""
        )
        self.error_label.hide()
        self._update_buttons()

    def _update_buttons(self) -> None:
        mode = self._mode()
        mailing = self.table.current_mailing()
        can_act = mode in ("schedule", "reschedule") and not self._busy
        self.ok_button.setEnabled(can_act)
        self.when_box.setEnabled(can_act)
        self.at_edit.setEnabled(can_act and self.at_radio.isChecked())
        self.cancel_activity_button.setVisible(mode == "reschedule")
        self.cancel_activity_button.setEnabled(
            not self._busy and mailing is not None and mailing.activity_status is Status.SCHEDULED
        )
        again = mailing is not None and mailing.activity_status is Status.CANCELLED
        if mode == "reschedule":
            self.ok_button.setText("Send at next run" if self.now_radio.isChecked() else "Reschedule")
        elif self.now_radio.isChecked():
            self.ok_button.setText("Send now")
        else:
            self.ok_button.setText("Schedule again" if again else "Schedule")

    # -- acting ---------------------------------------------------------------------------------

    def chosen_time(self) -> datetime | None:
        """The chosen time in UTC, or None for "send now"."""
        return None if self.now_radio.isChecked() else to_utc(self.at_edit.dateTime())

    def show_problem(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()

    @Slot()
    def submit(self) -> None:
        """Schedule or reschedule as chosen; a time in the past is refused here, before the queue."""
        mailing = self.table.current_mailing()
        mode = self._mode()
        if mailing is None or mode not in ("schedule", "reschedule"):
            return
        at = self.chosen_time()
        if at is not None and at <= utcnow():
            self.show_problem(
                f"{local_text(at)} has already passed; choose a time in the future or Send now."
            )
            return
        actor, factory = current_actor(), self._factory
        if mode == "schedule":
            new = partial(operations.schedule_mailing_activity, factory, mailing.id, at=at, actor=actor)
            self._start(new, action="scheduled", send_now=at is None)
        else:
            assert mailing.activity_id is not None
            work = partial(operations.reschedule, factory, mailing.activity_id, at=at, actor=actor)
            self._start(work, action="rescheduled", send_now=at is None)

    @Slot()
    def cancel_activity(self) -> None:
        mailing = self.table.current_mailing()
        if mailing is None or mailing.activity_status is not Status.SCHEDULED:
            return
        assert mailing.activity_id is not None
        if confirm_cancel(self, mailing):
            work = partial(operations.cancel, self._factory, mailing.activity_id, actor=current_actor())
            self._start(work, action="cancelled", send_now=False)

    def _start(
        self,
        work: Callable[[], WritebackRow | operations.ScheduledActivity],
        *,
        action: Literal["scheduled", "rescheduled", "cancelled"],
        send_now: bool,
    ) -> None:
        self._busy = True
        self.progress.show()
        self.error_label.hide()
        self._update_buttons()
        self._runner.submit(
            work,
            on_done=lambda result: self._done(ScheduleOutcome.of(action, result, send_now)),
            on_error=self._failed,
        )

    def _done(self, outcome: ScheduleOutcome) -> None:
        self._busy = False
        self.progress.hide()
        self.outcome = outcome
        if outcome.action == "cancelled":
            self.cancelled.emit(outcome.writeback_id)
        else:
            self.scheduled.emit(outcome.writeback_id)
            if outcome.send_now:
                self.send_requested.emit([outcome.writeback_id])
        self.accept()

    def _failed(self, exc: BaseException) -> None:
        self._busy = False
        self._search_task = None
        self.progress.hide()
        self._update_buttons()
        if isinstance(exc, QueueError):
            # The queue's refusals are already in words; they belong next to the choice they refuse.
            self.show_problem(errors.describe_exception(exc)[0])
            self.search()
        else:
            self.show_problem("The database could not be reached; nothing was changed.")
            errors.report_exception(self, "Schedule Mailing Activity", exc)

    def reject(self) -> None:
        # A write under way finishes first, so that its outcome is known.
        if not self._busy:
            if self._search_task is not None:
                self._search_task.cancel()
            super().reject()


def ask_schedule(
    factory: sessionmaker[Session],
    runner: TaskRunner,
    parent: QWidget | None = None,
    mailing_id: int | None = None,
) -> ScheduleOutcome | None:
    """Run the Schedule dialog modally; what it did, or None if it was closed without acting."""
    dialog = ScheduleDialog(factory, runner, parent, mailing_id)
    dialog.exec()
    outcome = dialog.outcome
    dialog.deleteLater()
    return outcome
