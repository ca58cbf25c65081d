"""The whole console put together: the main window, its pages and dialogs, and the dispatcher thread.

Every connection between the parts is made here, in one place and one order, so that each part can be
built and tested on its own.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Slot
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from writeback_console.dispatch.summary import CycleSummary, ProblemKind
from writeback_console.settings import AppSettings
from writeback_console.ui.dialogs import retry, schedule, settings_dialog
from writeback_console.ui.dialogs.constituent import ConstituentViewer
from writeback_console.ui.dispatcher_worker import (
    CycleFailure,
    DispatcherController,
    DispatcherStatus,
    FailureKind,
)
from writeback_console.ui.main_window import (
    BANNER_CREDENTIALS,
    BANNER_DATABASE,
    BANNER_DISABLED,
    BANNER_UNREACHABLE,
    PAGE_CONSTITUENTS,
    PAGE_MAILINGS,
    PAGE_SETTINGS,
    MainWindow,
)
from writeback_console.ui.pages.mailings import MailingsPage

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

        self.mailings = MailingsPage(factory, runner)
        self.constituents = ConstituentViewer(factory, runner, services.client)
        self.settings_page = SettingsPage(services)
        window.set_page(PAGE_MAILINGS, self.mailings)
        window.set_page(PAGE_CONSTITUENTS, self.constituents)
        window.set_page(PAGE_SETTINGS, self.settings_page)

        self.controller = DispatcherController(factory, services.settings, services.client, self)
        self.status = DispatcherStatus(self.controller)
        layout = window.dispatcher_slot.layout()
        assert layout is not None
        layout.addWidget(self.status)

        window.retry_requested.connect(self.retry)
        window.schedule_requested.connect(self.schedule)
        window.settings_requested.connect(self.open_settings)
        window.run_now_requested.connect(self.controller.run_requested)
        window.pause_requested.connect(self.controller.pause_requested)
        self.settings_page.open_button.clicked.connect(self.open_settings)
        self.mailings.run_requested.connect(self.controller.run_requested)
        self.mailings.scheduled.connect(self._queue_changed)
        self.mailings.cancelled.connect(self._queue_changed)
        self.mailings.open_ref.connect(window.open_ref)
        self.constituents.open_ref.connect(window.open_ref)
        window.page_changed.connect(self._page_shown)
        self.controller.worker.finished.connect(self.cycle_finished)
        self.controller.worker.failed.connect(self.cycle_failed)
        self._dispatching = dispatcher
        if dispatcher:
            self.controller.start()
        else:
            self.status.state_label.setText("Dispatcher not started")

    @Slot(str)
    def _page_shown(self, name: str) -> None:
        # Whoever opens the lookup is about to type an email; the Mailings page shows fresh counts.
        if name == PAGE_CONSTITUENTS:
            self.constituents.email_edit.setFocus()
        elif name == PAGE_MAILINGS:
            self.mailings.refresh()

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
        rows = "1 writeback" if len(retried) == 1 else f"{len(retried):,} writebacks"
        self.window.show_message(f"{rows} will be retried at the next dispatcher run")
        if send_now:
            self.controller.run_requested.emit()

    @Slot()
    def schedule(self) -> None:
        outcome = schedule.ask_schedule(self.services.factory, self.services.runner, self.window)
        if outcome is None:
            return
        self._queue_changed(outcome.writeback_id)
        if outcome.send_now:
            self.controller.run_requested.emit()

    @Slot()
    def open_settings(self) -> None:
        saved = settings_dialog.ask_settings(
            self.services.settings,
            self.services.password_store,
            self.services.factory,
            self.services.runner,
            self.window,
            self.services.settings_path,
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
        w.show_message(f"Dispatcher: {summary.describe()}", 15_000)

    @Slot(object)
    def cycle_failed(self, failure: CycleFailure) -> None:
        self.window.show_message(failure.text, 20_000)
        if failure.kind is FailureKind.SETTINGS:
            self.window.show_banner(BANNER_UNREACHABLE, failure.text)

    def shut_down(self, wait_ms: int = 70_000) -> None:
        """Finish or release an in-flight dispatcher cycle, then end its thread."""
        if self._dispatching and not self.controller.stop(wait_ms):
            log.warning("the dispatcher did not stop within %d s", wait_ms // 1000)


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."
