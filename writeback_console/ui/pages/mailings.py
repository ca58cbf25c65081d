"""The Mailings page: every mailing with its recipients and mailing activity, and the actions on it."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Literal

from PySide6.QtCore import QPoint, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.orm import Session, sessionmaker

from writeback_console import operations
from writeback_console.domain import Status
from writeback_console.store.listing import MailingRow
from writeback_console.store.permissions import Action
from writeback_console.store.rows import QueueError, WritebackRow, current_actor
from writeback_console.ui.dialogs import TaskGroup, count_text, errors, schedule
from writeback_console.ui.dialogs.schedule import (
    MOVABLE,
    MailingTable,
    ScheduleOutcome,
    activity_id,
    can_schedule,
)
from writeback_console.ui.permissions import PermissionGate
from writeback_console.ui.tasks import Task, TaskRunner

#: The recipients-known figure is our own table's, set when the mailing was recorded; it is not asked of
#: Personify360 again until the activity is sent, so every place that shows it says so.
KNOWN_COLUMN_TITLE = "Known when recorded"
KNOWN_EXPLAINED = (
    "Recipients whose email matched a Personify360 constituent when the mailing was recorded in this "
    "queue. Personify360 is not asked again until the activity is sent: a constituent removed or merged "
    "there since then fails as unknown."
)


def known_text(mailing: MailingRow) -> str:
    """The figure in a sentence that says where it comes from."""
    return (
        f"{mailing.remote_recipients:,} of {count_text(mailing.recipients, 'recipient')} "
        f"{'was' if mailing.remote_recipients == 1 else 'were'} known in Personify360 when the mailing "
        "was recorded"
    )


class MailingsPage(QWidget):
    """Searchable list of mailings with Schedule… (Schedule again… after a cancel), Send now,
    Reschedule… and Cancel scheduled.

    Signals:
        scheduled(int): a mailing-activity writeback was created or moved (its id).
        cancelled(int): a Scheduled mailing-activity writeback was withdrawn (its id; it stays, Cancelled).
        send_requested(list): "Send now" was chosen for this mailing-activity writeback (its id, in a list):
            the caller sends it, and only it, at once.
        open_ref(str): the user asked to see a mailing's activity in the Writeback List.
    """

    scheduled = Signal(int)
    cancelled = Signal(int)
    send_requested = Signal(list)
    open_ref = Signal(str)

    def __init__(self, factory: sessionmaker[Session], runner: TaskRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self._factory = factory
        self._task_runner = runner
        # Every result comes back through the group, which drops it once this widget is gone.
        self._runner = TaskGroup(self, runner)
        self._task: Task | None = None
        self._busy = False

        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search mailings by name")
        self.search_edit.setClearButtonEnabled(True)
        self.search_timer = QTimer(self)
        self.search_timer.setObjectName("mailings_page_search_throttle")
        self.search_timer.setSingleShot(True)
        self.search_timer.setInterval(schedule.SEARCH_DELAY_MS)
        self.search_timer.timeout.connect(self.refresh)
        self.search_edit.textChanged.connect(self.search_timer.start)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setShortcut(QKeySequence.StandardKey.Refresh)
        self.refresh_button.clicked.connect(self.refresh)

        self.table = MailingTable()
        # Beside the navigation at 1,024 px the page has about 770 px: long names give way to the
        # mailing activity's status (the whole name is in its tooltip).
        self.table.NAME_WIDTH = 240
        known_column = MailingTable.COLUMNS.index("In Personify360")
        self.table.headerItem().setText(known_column, KNOWN_COLUMN_TITLE)
        self.table.headerItem().setToolTip(known_column, KNOWN_EXPLAINED)
        self.table.currentItemChanged.connect(self._update_actions)
        self.table.itemDoubleClicked.connect(self._open_activity)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)

        self.schedule_action = QAction("Schedule…", self)
        self.send_now_action = QAction("Send now", self)
        self.reschedule_action = QAction("Reschedule…", self)
        self.cancel_action = QAction("Cancel scheduled…", self)
        self.open_action = QAction("Show in Writeback List", self)
        # Ctrl+Shift+S is the window's Schedule (which it ran here too) and Ctrl+Shift+X the window's Clear
        # filters: Cancel takes Delete, within this page.
        self.cancel_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        self.schedule_action.triggered.connect(self.schedule_chosen)
        self.send_now_action.triggered.connect(self.send_now)
        self.reschedule_action.triggered.connect(self.reschedule_chosen)
        self.cancel_action.triggered.connect(self.cancel_chosen)
        self.open_action.triggered.connect(self._open_activity)
        for action in (self.schedule_action, self.cancel_action):
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.addAction(action)

        # What the last action did stays in view; the reload that follows it updates only the count.
        self.status_label = QLabel()
        self.count_label = QLabel()
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setTextVisible(False)
        self.progress.setMaximumSize(120, 12)
        self.progress.hide()

        top = QHBoxLayout()
        top.addWidget(QLabel("Mailings"))
        top.addWidget(self.search_edit, 1)
        top.addWidget(self.refresh_button)
        top.addWidget(self.count_label)
        buttons = QHBoxLayout()
        self.action_buttons: list[QPushButton] = []
        for action in (
            self.schedule_action,
            self.send_now_action,
            self.reschedule_action,
            self.cancel_action,
        ):
            button = QPushButton(action.text())
            button.clicked.connect(action.trigger)
            self.action_buttons.append(button)
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.progress)
        buttons.addWidget(self.status_label)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self._update_actions()
        self.refresh()

    # -- loading --------------------------------------------------------------------------------

    @Slot()
    def refresh(self) -> None:
        """Reload the list (after a dispatcher cycle, or when the page is shown); the selection is kept."""
        if self._task is not None:
            self._task.cancel()
        self.progress.show()
        self._task = self._runner.submit(
            schedule.find_mailings,
            self._factory,
            self.search_edit.text(),
            on_done=self._show,
            on_error=self._failed,
        )

    def _show(self, rows: list[MailingRow]) -> None:
        self._task = None
        self.progress.setVisible(self._busy)
        self.table.set_mailings(rows)
        known_column = MailingTable.COLUMNS.index("In Personify360")
        for n, row in enumerate(rows):
            item = self.table.topLevelItem(n)
            if item is not None:
                item.setToolTip(known_column, f"{known_text(row)}. {KNOWN_EXPLAINED}")
        shown = count_text(len(rows), "mailing")
        self.count_label.setText(shown if len(rows) < 200 else f"first {shown}; search to narrow")
        self._update_actions()

    def _failed(self, exc: BaseException) -> None:
        self._task = None
        self._busy = False
        self.progress.hide()
        self._update_actions()
        if isinstance(exc, QueueError):
            self.status_label.setText(errors.describe_exception(exc)[0])
            self.refresh()
        else:
            self.status_label.setText("The mailings could not be read.")
            errors.report_exception(self, "Mailings", exc)

    # -- actions --------------------------------------------------------------------------------

    @Slot()
    def _update_actions(self) -> None:
        mailing = self.table.current_mailing()
        status = mailing.activity_status if mailing else None
        free = mailing is not None and not self._busy and can_schedule(status)
        self.schedule_action.setText("Schedule again…" if status is Status.CANCELLED else "Schedule…")
        self.schedule_action.setEnabled(free)
        # "Send now" also pulls a Scheduled activity forward, and sends a New one (left by a Send now
        # that could not send) at once rather than at the next run.
        self.send_now_action.setEnabled(free or (not self._busy and status in (Status.SCHEDULED, Status.NEW)))
        self.reschedule_action.setEnabled(not self._busy and status in MOVABLE)
        self.cancel_action.setEnabled(not self._busy and status is Status.SCHEDULED)
        self.open_action.setEnabled(mailing is not None and mailing.activity_ref is not None)
        self._sync_buttons()

    def _sync_buttons(self) -> None:
        """The buttons follow their actions, text and tooltip included ("Schedule again…" after a cancel)."""
        actions = (self.schedule_action, self.send_now_action, self.reschedule_action, self.cancel_action)
        for action, button in zip(actions, self.action_buttons, strict=True):
            button.setText(action.text())
            button.setEnabled(action.isEnabled())
            button.setToolTip(action.toolTip())

    def set_gate(self, gate: PermissionGate) -> None:
        """Disable what the connected role may not do, here and in the context menu, saying why."""
        for action, what in (
            (self.schedule_action, Action.SCHEDULE),
            (self.send_now_action, Action.SEND_NOW),
            (self.reschedule_action, Action.RESCHEDULE),
            (self.cancel_action, Action.CANCEL),
        ):
            gate.guard(action, what)
        self._update_actions()

    @Slot()
    def schedule_chosen(self) -> None:
        mailing = self.table.current_mailing()
        if mailing is not None:
            self._after_dialog(schedule.ask_schedule(self._factory, self._task_runner, self, mailing.id))

    @Slot()
    def reschedule_chosen(self) -> None:
        self.schedule_chosen()

    def _after_dialog(self, outcome: ScheduleOutcome | None) -> None:
        if outcome is None:
            return
        self._announce(outcome)
        self.refresh()

    def _announce(self, outcome: ScheduleOutcome) -> None:
        if outcome.action == "cancelled":
            self.status_label.setText(
                "Mailing activity cancelled; it stays listed as Cancelled and can be scheduled again."
            )
            self.cancelled.emit(outcome.writeback_id)
            return
        when = "now, on its own" if outcome.send_now else "at the chosen time"
        self.status_label.setText(f"Mailing activity {outcome.action}; it goes out {when}.")
        self.scheduled.emit(outcome.writeback_id)
        if outcome.send_now:
            self.send_requested.emit([outcome.writeback_id])

    @Slot()
    def send_now(self) -> None:
        mailing = self.table.current_mailing()
        if mailing is None or not self.send_now_action.isEnabled():
            return
        again = " again" if mailing.activity_status is Status.CANCELLED else ""
        question = (
            f"Send the mailing activity of “{mailing.name}”{again} now? Only it is sent: nothing else in "
            "the queue is claimed or retried by it.\n\n"
            f"{known_text(mailing)}; one removed or merged in Personify360 since then fails as unknown."
        )
        if mailing.remote_recipients == 0:
            question += " It will end as No Remote Recipients."
        if not schedule.confirm(self, "Send mailing activity now", question):
            return
        if mailing.activity_status is Status.NEW and mailing.activity_id is not None:
            # Already due: nothing in the queue changes, it is only sent now instead of at the next run.
            self.status_label.setText("Mailing activity due already; it goes out now, on its own.")
            self.send_requested.emit([mailing.activity_id])
            return
        action: Literal["scheduled", "rescheduled"] = (
            "rescheduled" if mailing.activity_status is Status.SCHEDULED else "scheduled"
        )
        self._submit(
            partial(operations.send_mailing_activity_now, self._factory, mailing.id, actor=current_actor()),
            action,
            send_now=True,
        )

    @Slot()
    def cancel_chosen(self) -> None:
        mailing = self.table.current_mailing()
        if mailing is None or mailing.activity_status is not Status.SCHEDULED:
            return
        assert mailing.activity_id is not None
        if schedule.confirm_cancel(self, mailing):
            work = partial(operations.cancel, self._factory, mailing.activity_id, actor=current_actor())
            self._submit(work, "cancelled", send_now=False)

    def _submit(
        self,
        work: Callable[[], WritebackRow | operations.ScheduledActivity],
        action: Literal["scheduled", "rescheduled", "cancelled"],
        *,
        send_now: bool,
    ) -> None:
        self._busy = True
        self._update_actions()
        self.progress.show()
        self._runner.submit(
            work,
            on_done=lambda result: self._finished(ScheduleOutcome(action, activity_id(result), send_now)),
            on_error=self._failed,
        )

    def _finished(self, outcome: ScheduleOutcome) -> None:
        self._busy = False
        self._announce(outcome)
        self.refresh()

    @Slot()
    def _open_activity(self) -> None:
        mailing = self.table.current_mailing()
        if mailing is not None and mailing.activity_ref is not None:
            self.open_ref.emit(mailing.activity_ref)

    @Slot(QPoint)
    def _context_menu(self, pos: QPoint) -> None:
        menu = QMenu(self)
        for action in (
            self.schedule_action,
            self.send_now_action,
            self.reschedule_action,
            self.cancel_action,
            None,
            self.open_action,
        ):
            if action is None:
                menu.addSeparator()
            else:
                menu.addAction(action)
        menu.setToolTipsVisible(True)  # a disabled entry says which role it needs
        menu.exec(self.table.viewport().mapToGlobal(pos))
