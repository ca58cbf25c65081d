"""The whole console put together: the main window, its pages and dialogs, and the dispatcher thread.

Every connection between the parts is made here, in one place and one order, so that each part can be
built and tested on its own.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Slot
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from writeback_console import operations
from writeback_console.dispatch.summary import CycleSummary, ProblemKind
from writeback_console.domain import Kind
from writeback_console.settings import AppSettings
from writeback_console.store import runs
from writeback_console.store.rows import WritebackRow, current_actor
from writeback_console.ui.dialogs import errors, retry, schedule, settings_dialog
from writeback_console.ui.dialogs.constituent import ConstituentViewer
from writeback_console.ui.dialogs.schedule import ScheduleOutcome
from writeback_console.ui.dispatcher_worker import (
    CycleFailure,
    DispatcherController,
    DispatcherStatus,
    FailureKind,
    RunsSeen,
    RunWatch,
)
from writeback_console.ui.main_window import (
    BANNER_CREDENTIALS,
    BANNER_DATABASE,
    BANNER_DISABLED,
    BANNER_NO_DISPATCHER,
    BANNER_UNREACHABLE,
    PAGE_CONSTITUENTS,
    PAGE_MAILINGS,
    PAGE_SETTINGS,
    PAGE_WRITEBACKS,
    MainWindow,
)
from writeback_console.ui.pages.mailings import MailingsPage
from writeback_console.ui.tasks import TaskGroup

if TYPE_CHECKING:
    from writeback_console.ui.composition_root import Services

log = logging.getLogger(__name__)


class SettingsPage(QWidget):
    """The Settings page: where the connection points, and the button that opens the Settings dialog."""

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        layout = QVBoxLayout(self)
        title = QLabel("Settings")
        title.setObjectName("pageTitle")
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_button = QPushButton("Open Settings…")
        self.open_button.setToolTip("Personify360 connection, activity codes, dispatcher, writeback switch")
        layout.addWidget(title)
        layout.addWidget(self.summary)
        layout.addWidget(self.open_button)
        layout.addStretch(1)
        self.show_settings(services.settings)

    def show_settings(self, settings: AppSettings) -> None:
        url = settings.service_root_url or "not set"
        self.summary.setText(
            f"Personify360 service: {url}\nUser: {settings.user or 'not set'}\n"
            f"Password kept in: {self.services.password_store.where}\n"
            f"Dispatcher: every {settings.interval_seconds // 60} min, {settings.concurrency} at once, "
            f"lease {settings.lease_seconds} s"
        )


class Console(QObject):
    """Holds the window, its pages and the dispatcher, and connects them."""

    def __init__(self, services: Services, window: MainWindow, *, dispatcher: bool = True) -> None:
        super().__init__(window)
        self.services = services
        self.window = window
        factory, runner = services.factory, services.runner
        self._tasks = TaskGroup(self, runner)

        self.mailings = MailingsPage(factory, runner)
        self.mailings.set_gate(window.gate)
        self.constituents = ConstituentViewer(factory, runner, services.client)
        self.settings_page = SettingsPage(services)
        window.set_page(PAGE_MAILINGS, self.mailings)
        window.set_page(PAGE_CONSTITUENTS, self.constituents)
        window.set_page(PAGE_SETTINGS, self.settings_page)

        self.controller = DispatcherController(factory, services.settings, services.client, self)
        # The window's Run now and Pause actions are the status bar's buttons too: one state for all.
        self.status = DispatcherStatus(
            self.controller, run_action=window.run_now_action, pause_action=window.pause_action
        )
        layout = window.dispatcher_slot.layout()
        assert layout is not None
        layout.addWidget(self.status)

        window.retry_requested.connect(self.retry)
        window.schedule_requested.connect(self.schedule)
        window.reschedule_requested.connect(self.reschedule)
        window.cancel_scheduled_requested.connect(self.cancel_scheduled)
        window.settings_requested.connect(self.open_settings)
        window.run_now_requested.connect(self.controller.run_requested)
        window.pause_requested.connect(self.controller.pause_requested)
        self.settings_page.open_button.clicked.connect(self.open_settings)
        self.mailings.send_requested.connect(self.send_now)
        self.controller.worker.send_deferred.connect(self._send_deferred)
        self.controller.worker.send_refused.connect(self._send_refused)
        self.mailings.scheduled.connect(self._queue_changed)
        self.mailings.cancelled.connect(self._queue_changed)
        self.mailings.open_ref.connect(window.open_ref)
        self.constituents.open_ref.connect(window.open_ref)
        window.writebacks.lookup_requested.connect(self.look_up)
        window.page_changed.connect(self._page_shown)
        self.controller.worker.finished.connect(self.cycle_finished)
        self.controller.worker.failed.connect(self.cycle_failed)
        self._dispatching = dispatcher
        #: In a console that does not dispatch: the newest run of whoever does, read from the database.
        self.run_watch: RunWatch | None = None
        if dispatcher:
            self.controller.start()
        else:
            self.status.show_not_dispatching()
            self.run_watch = RunWatch(factory, runner, self)
            self.run_watch.seen.connect(self.status.show_runs_seen)
            self.run_watch.seen.connect(self._runs_seen)
            self.run_watch.failed.connect(self.status.last_label.set_full_text)
            # A run that changed rows is news at once; one with nothing to do is seen at the next read.
            window.writebacks.live_changed.connect(self.run_watch.refresh)
            self.run_watch.start()

    @Slot(object)
    def _runs_seen(self, seen: RunsSeen) -> None:
        text = runs.overdue_text(
            seen.latest, seen.now, self.services.settings.interval_seconds, sending=seen.sending
        )
        if text is None:
            self.window.hide_banner(BANNER_NO_DISPATCHER)
        else:
            self.window.show_banner(BANNER_NO_DISPATCHER, text)

    @Slot(list)
    def send_now(self, ids: list[int]) -> None:
        """Send now: a cycle for these writebacks alone, or, in a console that does not dispatch, word
        that they are due (Send now made them so) and go at the dispatchers' next run."""
        if self._dispatching:
            self.controller.send_requested.emit(ids)
            return
        what = "It is" if len(ids) == 1 else f"{len(ids):,} writebacks are"
        text = f"{what} due now: a dispatcher sends it on its next run (this console does not dispatch)."
        self.mailings.status_label.setText(text)
        self.window.show_message(text, 20_000)

    @Slot(str)
    def _page_shown(self, name: str) -> None:
        # Whoever opens the lookup is about to type an email; the Mailings page shows fresh counts.
        if name == PAGE_CONSTITUENTS:
            self.constituents.email_edit.setFocus()
        elif name == PAGE_MAILINGS:
            self.mailings.refresh()

    @Slot(str)
    def look_up(self, email: str) -> None:
        """A list row's email, shown in the constituent viewer (the viewer's refs lead back)."""
        self.window.show_page(PAGE_CONSTITUENTS)
        self.constituents.search(email)

    @Slot(list)
    def retry(self, ids: list[int]) -> None:
        # The audit entry names the list's filter the rows were chosen under.
        chosen_under = self.window.writebacks.current_filter().to_json() or None
        outcome = retry.ask_retry(
            self.services.factory, self.services.runner, ids, self.window, filter=chosen_under
        )
        if outcome is None:
            return
        retried, send_now = outcome
        self.window.writebacks.refresh_rows(retried)
        what = "1 writeback" if len(retried) == 1 else f"{len(retried):,} writebacks"
        when = "now, on their own" if send_now else "at the next dispatcher run"
        self.window.show_message(f"{what} will be retried {when}")
        if send_now:
            self.send_now(list(retried))

    @Slot()
    def schedule(self) -> None:
        """The Schedule dialog, with the mailing of the mailing activity chosen in the list, if any."""
        row = self.window.acted_row() if self.window.current_page() == PAGE_WRITEBACKS else None
        mailing_id = row.mailing_id if row is not None and row.kind is Kind.MAILING_ACTIVITY else None
        outcome = schedule.ask_schedule(self.services.factory, self.services.runner, self.window, mailing_id)
        if outcome is not None:
            self._scheduled(outcome)

    @Slot(object)
    def reschedule(self, row: WritebackRow) -> None:
        """Reschedule… on a row: the Schedule dialog opens on its mailing, ready to move it."""
        if row.mailing_id is None:
            return
        outcome = schedule.ask_schedule(
            self.services.factory, self.services.runner, self.window, row.mailing_id
        )
        if outcome is not None:
            self._scheduled(outcome)

    def _scheduled(self, outcome: ScheduleOutcome) -> None:
        """Say what happened, in local time and UTC, and show the row in the list."""
        self.window.show_message(outcome.confirmation(), 20_000)
        self.mailings.refresh()
        if outcome.action == "cancelled":
            self.window.writebacks.reload()
        else:
            self.show_row(outcome.writeback_id, outcome.ref)
        if outcome.send_now:
            self.send_now([outcome.writeback_id])

    @Slot(int)
    def _send_deferred(self, count: int) -> None:
        what = "The writeback is" if count == 1 else f"{count:,} writebacks are"
        self.window.show_message(f"{what} queued; the dispatcher is paused, so it goes out after Resume.")

    @Slot(str)
    def _send_refused(self, why: str) -> None:
        self.window.show_message(why[:1].upper() + why[1:], 20_000)

    @Slot(object)
    def cancel_scheduled(self, row: WritebackRow) -> None:
        """Cancel scheduled… on a row: asked first, then cancelled off the GUI thread."""
        if not schedule.confirm_cancel_row(self.window, row):
            return
        work = partial(operations.cancel, self.services.factory, row.id, actor=current_actor())
        self.window.show_message(f"Cancelling {row.ref}…")
        self._tasks.submit(work, on_done=self._cancelled, on_error=self._cancel_failed)

    def _cancelled(self, row: WritebackRow) -> None:
        self.window.show_message(ScheduleOutcome.of("cancelled", row, False).confirmation(), 20_000)
        self._queue_changed(row.id)

    def _cancel_failed(self, exc: BaseException) -> None:
        # Whatever the refusal says (it was sent or picked up meanwhile), the list shows how it is now.
        self.window.show_message("Nothing was cancelled")
        self._queue_changed()
        errors.report_exception(self.window, "Cancel scheduled mailing activity", exc)

    def show_row(self, writeback_id: int, ref: str) -> None:
        """Select this writeback in the list: where it is, or else found alone by its reference."""
        page = self.window.writebacks
        if page.model.row_of_id(writeback_id) is not None:
            self.window.show_page(PAGE_WRITEBACKS)
            page.table.select_ids([writeback_id], current=writeback_id)
            page.reload()
        elif ref:
            self.window.open_ref(ref)

    @Slot()
    def open_settings(self) -> None:
        saved = settings_dialog.ask_settings(
            self.services.settings,
            self.services.password_store,
            self.services.factory,
            self.services.runner,
            self.window,
            self.services.settings_path,
            self.window.gate,
        )
        if saved is None:
            return
        self.services.settings = saved
        self.window.settings = saved
        self.settings_page.show_settings(saved)
        self.controller.settings_changed.emit(saved)
        self.window.check_writeback_enabled()
        self.window.show_message("Settings saved")

    @Slot(int)
    def _queue_changed(self, _writeback_id: int = 0) -> None:
        self.window.writebacks.reload()
        self.mailings.refresh()

    @Slot(object)
    def cycle_finished(self, summary: CycleSummary) -> None:
        """After a run: refresh just the rows it changed, and say what stands in the way, if anything."""
        w = self.window
        if summary.disabled:
            w.show_banner(BANNER_DISABLED, "Writebacks are switched off: they queue up but nothing is sent.")
        # The switches may have been changed elsewhere (another console, `switch`): the banner follows.
        w.check_writeback_enabled()
        # The banner is chosen by the kind of problem, and its words come from the cycle's own summary.
        reason = _sentence(summary.stopped_reason or "")
        if summary.problem is ProblemKind.AUTH:
            w.show_banner(BANNER_CREDENTIALS, reason)
        elif summary.problem in (ProblemKind.UNREACHABLE, ProblemKind.OUTAGE):
            w.show_banner(BANNER_UNREACHABLE, reason)
        elif summary.problem is ProblemKind.DATABASE:
            w.show_banner(BANNER_DATABASE, reason)
        if summary.problem is None and not summary.disabled:
            w.hide_banner(BANNER_CREDENTIALS)
            w.hide_banner(BANNER_UNREACHABLE)
        if summary.problem is not ProblemKind.DATABASE and not summary.disabled:
            w.hide_banner(BANNER_DATABASE)
        if summary.changed_ids:
            w.writebacks.refresh_rows(list(summary.changed_ids))
        if summary.auto_scheduled:
            w.writebacks.reload()
        w.dashboard.refresh()
        self.mailings.refresh()
        # The run's result is the status bar's "Last run" (whole in its tooltip): not said twice.

    @Slot(object)
    def cycle_failed(self, failure: CycleFailure) -> None:
        self.window.show_message(failure.text, 20_000)
        if failure.kind is FailureKind.SETTINGS:
            self.window.show_banner(BANNER_UNREACHABLE, failure.text)

    def shut_down(self, wait_ms: int = 70_000) -> None:
        """Finish or release an in-flight dispatcher cycle, then end its thread."""
        if self.run_watch is not None:
            self.run_watch.stop()
        if self._dispatching and not self.controller.stop(wait_ms):
            log.warning("the dispatcher did not stop within %d s", wait_ms // 1000)


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."
