"""The dispatcher in the desktop app: a QObject in its own QThread with its timer, and its status widget.

The worker's QTimer is created in the worker thread (in the slot connected to ``QThread.started``), so
the timer fires there and a running cycle never blocks the window. The GUI talks to it only through
queued signals and a thread-safe stop event; everything the worker reports is plain data.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QMetaObject, QObject, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget
from sqlalchemy.orm import Session, sessionmaker

from writeback_console.dispatch.cycle import run_cycle
from writeback_console.dispatch.summary import CycleProgress, CycleSummary
from writeback_console.personify.client import PersonifyClient
from writeback_console.settings import AppSettings, SettingsError

log = logging.getLogger(__name__)

ClientFactory = Callable[[], PersonifyClient]


@dataclass(frozen=True)
class DispatcherState:
    """What the status bar shows about the dispatcher."""

    #: idle, running, paused or stopping
    mode: str
    #: time.monotonic() of the next run, None while running or paused
    next_run_at: float | None


class FailureKind(enum.StrEnum):
    """Why a cycle could not run at all; the console picks its banner by this, never by the words."""

    #: The Personify360 settings are incomplete or wrong: nothing can be sent until they are fixed.
    SETTINGS = "settings"
    #: Anything else (the database unreachable, a bug): the next run tries again.
    INTERNAL = "internal"


@dataclass(frozen=True)
class CycleFailure:
    kind: FailureKind
    #: In words, for the status bar and the banner.
    text: str


class DispatcherWorker(QObject):
    """Runs dispatcher cycles on a timer in its own thread.

    Signals:
        state_changed(DispatcherState): idle/running/paused and when the next run is due.
        progress(CycleProgress): during a cycle, after each batch of results is recorded.
        finished(CycleSummary): after every cycle.
        failed(CycleFailure): a cycle could not run (settings incomplete, database unreachable).
    """

    state_changed = Signal(object)
    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(object)

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: AppSettings,
        client_factory: ClientFactory,
    ) -> None:
        super().__init__()
        self._factory = factory
        self._settings = settings
        self._client_factory = client_factory
        self._stop = threading.Event()
        self._paused = False
        self._timer: QTimer | None = None

    # Called from the GUI thread: setting an Event is thread-safe, and it must act during a cycle,
    # when the worker's event loop is busy and a queued slot would wait for the cycle to end.
    def request_stop(self) -> None:
        self._stop.set()

    @Slot()
    def start(self) -> None:
        """Runs in the worker thread once it has started: the timer must be born there."""
        self._timer = QTimer(self)
        self._timer.setObjectName("dispatcher-interval")
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.run_now)
        self._schedule()

    @Slot()
    def run_now(self) -> None:
        if self._stop.is_set():
            return
        if self._timer is not None:
            self._timer.stop()
        self.state_changed.emit(DispatcherState("running", None))
        try:
            summary = self._cycle()
        except SettingsError as exc:
            self.failed.emit(
                CycleFailure(FailureKind.SETTINGS, f"Personify360 settings are incomplete: {exc}")
            )
        except Exception as exc:  # shown in the status bar; the next run tries again
            log.exception("dispatcher cycle failed")
            self.failed.emit(CycleFailure(FailureKind.INTERNAL, f"the dispatcher run failed: {exc}"))
        else:
            self.finished.emit(summary)
        self._schedule()

    @Slot(bool)
    def set_paused(self, paused: bool) -> None:
        self._paused = paused
        self._schedule()

    @Slot(object)
    def apply_settings(self, settings: AppSettings) -> None:
        self._settings = settings
        self._schedule()

    @Slot()
    def shutdown(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.stop()
        self.state_changed.emit(DispatcherState("stopping", None))

    def _schedule(self) -> None:
        if self._timer is None or self._stop.is_set():
            return
        if self._paused:
            self._timer.stop()
            self.state_changed.emit(DispatcherState("paused", None))
            return
        interval_ms = int(self._settings.interval_seconds * 1000)
        self._timer.start(interval_ms)
        self.state_changed.emit(DispatcherState("idle", time.monotonic() + interval_ms / 1000))

    def _cycle(self) -> CycleSummary:
        options = self._settings.dispatch_options()
        with self._client_factory() as client:
            return run_cycle(
                self._factory,
                client,
                self._settings.activity_mapping,
                options,
                progress=self.progress.emit,
                stop=self._stop,
            )


class DispatcherController(QObject):
    """Owns the worker thread: starts it, forwards commands, and stops it cleanly on close."""

    run_requested = Signal()
    pause_requested = Signal(bool)
    settings_changed = Signal(object)

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: AppSettings,
        client_factory: ClientFactory,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.worker_thread = QThread()
        self.worker_thread.setObjectName("dispatcher")
        self.worker = DispatcherWorker(factory, settings, client_factory)
        self.worker.moveToThread(self.worker_thread)
        self.worker_thread.started.connect(self.worker.start)
        self.run_requested.connect(self.worker.run_now)
        self.pause_requested.connect(self.worker.set_paused)
        self.settings_changed.connect(self.worker.apply_settings)

    def start(self) -> None:
        self.worker_thread.start()

    def stop(self, wait_ms: int = 60_000) -> bool:
        """Finish or release an in-flight cycle and end the thread; True if it ended in time."""
        self.worker.request_stop()
        if self.worker_thread.isRunning():
            # The timer lives in the worker thread and must be stopped there; this waits for a running
            # cycle, which the stop event has told to finish its requests and put the rest back.
            QMetaObject.invokeMethod(self.worker, "shutdown", Qt.ConnectionType.BlockingQueuedConnection)
        self.worker_thread.quit()
        return bool(self.worker_thread.wait(wait_ms))


class DispatcherStatus(QWidget):
    """The status bar's dispatcher area: state, countdown, progress, last result, Run now and Pause."""

    def __init__(self, controller: DispatcherController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self._state = DispatcherState("idle", None)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.state_label = QLabel("Dispatcher starting…")
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(160)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.hide()
        self.last_label = QLabel("")
        self.run_button = QPushButton("Run now")
        self.run_button.setToolTip("Start a dispatcher run now")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Pause or resume the dispatcher's timer")
        for widget in (
            self.state_label,
            self.progress_bar,
            self.last_label,
            self.run_button,
            self.pause_button,
        ):
            layout.addWidget(widget)
        self.run_button.clicked.connect(controller.run_requested)
        self.pause_button.toggled.connect(self._pause_toggled)
        worker = controller.worker
        worker.state_changed.connect(self.show_state)
        worker.progress.connect(self.show_progress)
        worker.finished.connect(self.show_summary)
        worker.failed.connect(self.show_failure)
        self._countdown = QTimer(self)
        self._countdown.setObjectName("dispatcher-countdown")
        self._countdown.setInterval(1000)
        self._countdown.timeout.connect(self._tick)
        self._countdown.start()

    @Slot(bool)
    def _pause_toggled(self, paused: bool) -> None:
        self.pause_button.setText("Resume" if paused else "Pause")
        self.controller.pause_requested.emit(paused)

    @Slot(object)
    def show_state(self, state: DispatcherState) -> None:
        self._state = state
        self.run_button.setEnabled(state.mode in ("idle", "paused"))
        if state.mode == "running":
            self.progress_bar.setRange(0, 0)
            self.progress_bar.show()
        else:
            self.progress_bar.hide()
        self._tick()

    @Slot(object)
    def show_progress(self, p: CycleProgress) -> None:
        done = p.sent + p.failed + p.no_remote_recipients
        total = done + p.remaining
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(done)
        self.progress_bar.setFormat(f"{done:,} / {total:,}")
        self.state_label.setText(f"Dispatcher running: {p.sent:,} sent, {p.failed:,} failed")

    @Slot(object)
    def show_summary(self, summary: CycleSummary) -> None:
        self.last_label.setText(f"Last run {summary.finished_at.astimezone():%H:%M}: {summary.describe()}")

    @Slot(object)
    def show_failure(self, failure: CycleFailure) -> None:
        self.last_label.setText(failure.text)

    @Slot()
    def _tick(self) -> None:
        state = self._state
        if state.mode == "running":
            if not self.progress_bar.format().strip("%p"):
                self.state_label.setText("Dispatcher running…")
            return
        if state.mode == "paused":
            self.state_label.setText("Dispatcher paused")
        elif state.mode == "stopping":
            self.state_label.setText("Dispatcher stopping…")
        elif state.next_run_at is not None:
            left = max(0, int(state.next_run_at - time.monotonic()))
            self.state_label.setText(f"Next run in {left // 60}:{left % 60:02d}")
