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
from dataclasses import dataclass, replace
from datetime import datetime

from PySide6.QtCore import QMetaObject, QObject, QSize, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence, QResizeEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QSizePolicy, QToolButton, QWidget
from sqlalchemy.orm import Session, sessionmaker

from writeback_console.dispatch.cycle import not_sent_reason, run_cycle
from writeback_console.dispatch.summary import CycleProgress, CycleSummary
from writeback_console.personify.client import PersonifyClient
from writeback_console.settings import AppSettings, SettingsError
from writeback_console.store import runs
from writeback_console.store.engine import read_session
from writeback_console.ui.tasks import Task, TaskGroup, TaskRunner

log = logging.getLogger(__name__)

ClientFactory = Callable[[], PersonifyClient]


@dataclass(frozen=True)
class DispatcherState:
    """What the status bar shows about the dispatcher."""

    #: idle, running, paused or stopping
    mode: str
    #: time.monotonic() of the next run, None while running or paused
    next_run_at: float | None
    #: Whether the dispatcher is paused: the one value every Pause control shows. While paused nothing
    #: is sent: Run now is disabled and a Send now waits for Resume.
    paused: bool = False


#: What Run now says, disabled, while the dispatcher is paused (and while a run is under way).
RUN_NOW_PAUSED_TIP = "The dispatcher is paused: Resume to run it"
RUN_NOW_BUSY_TIP = "A dispatcher run is under way"
#: What Run now and Pause say, disabled, in a console that leaves the dispatching to others.
NOT_DISPATCHING_TIP = "This console does not run the dispatcher: see Settings"
#: How often a console that does not dispatch reads the newest recorded run (besides the change feed).
RUN_WATCH_MS = 30_000


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
        send_deferred(int): "Send now" of that many writebacks came while paused: they are queued and
            sent on their own at Resume.
        send_refused(str): a Send now sent none of its writebacks, and why in words (their account is
            switched off, another dispatcher has them).
    """

    state_changed = Signal(object)
    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(object)
    send_deferred = Signal(int)
    send_refused = Signal(str)

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
        # An Event, like the stop: a pause asked for during a cycle holds when that cycle ends.
        self._paused = threading.Event()
        self._timer: QTimer | None = None
        #: Writebacks a Send now asked for while paused: sent on their own as soon as it resumes.
        self._deferred: dict[int, None] = {}

    # Called from the GUI thread: setting an Event is thread-safe, and it must act during a cycle,
    # when the worker's event loop is busy and a queued slot would wait for the cycle to end.
    def request_stop(self) -> None:
        self._stop.set()

    def request_pause(self, paused: bool) -> None:
        """Pause or resume from the GUI thread at once (the timer follows in ``set_paused``)."""
        if paused:
            self._paused.set()
        else:
            self._paused.clear()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    @Slot()
    def start(self) -> None:
        """Runs in the worker thread once it has started: the timer must be born there."""
        self._timer = QTimer(self)
        self._timer.setObjectName("dispatcher-interval")
        self._timer.setSingleShot(True)
        # Never early: a coarse timer of 20 s or more is rounded to whole seconds and may fire half a
        # second before its time, before the last failures of the previous run are due for their retry.
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self.run_now)
        self._schedule()

    @Slot()
    def run_now(self) -> None:
        if self._stop.is_set():
            return
        if self._timer is not None:
            self._timer.stop()
        self._run(None)
        self._schedule()

    @Slot(list)
    def send_now(self, ids: list[int]) -> None:
        """A cycle for these writebacks only ("Send now"): no other row is claimed or retried.

        The regular timer keeps its time: sending one writeback does not postpone the queue's next run.
        While paused nothing is sent; the rows stay due and are sent on their own at Resume.
        """
        if self._stop.is_set() or not ids:
            return
        if self.paused:
            self._deferred.update(dict.fromkeys(ids))
            self.send_deferred.emit(len(ids))
            return
        summary = self._run(ids)
        if summary is not None:
            self._say_if_not_sent(ids, summary)
        if self._timer is not None and self._timer.isActive() and not self.paused:
            left = self._timer.remainingTime() / 1000
            self.state_changed.emit(DispatcherState("idle", time.monotonic() + left))
        else:
            self._schedule()

    def _say_if_not_sent(self, ids: list[int], summary: CycleSummary) -> None:
        try:
            why = not_sent_reason(self._factory, ids, summary)
        except Exception:  # only words are lost; the run itself is over and reported
            log.exception("could not tell why a Send now sent nothing")
            return
        if why is not None:
            self.send_refused.emit(why)

    def _run(self, only: list[int] | None) -> CycleSummary | None:
        self.state_changed.emit(DispatcherState("running", None, self.paused))
        try:
            summary = self._cycle(only)
        except SettingsError as exc:
            self.failed.emit(
                CycleFailure(FailureKind.SETTINGS, f"Personify360 settings are incomplete: {exc}")
            )
        except Exception as exc:  # shown in the status bar; the next run tries again
            log.exception("dispatcher cycle failed")
            self.failed.emit(CycleFailure(FailureKind.INTERNAL, f"the dispatcher run failed: {exc}"))
        else:
            self.finished.emit(summary)
            return summary
        return None

    @Slot(bool)
    def set_paused(self, paused: bool) -> None:
        self.request_pause(paused)
        self._schedule()
        if not paused and self._deferred:
            deferred, self._deferred = list(self._deferred), {}
            self.send_now(deferred)

    @Slot(object)
    def apply_settings(self, settings: AppSettings) -> None:
        self._settings = settings
        self._schedule()

    @Slot()
    def shutdown(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.stop()
        self.state_changed.emit(DispatcherState("stopping", None, self.paused))

    def _schedule(self) -> None:
        if self._timer is None or self._stop.is_set():
            return
        if self.paused:
            self._timer.stop()
            self.state_changed.emit(DispatcherState("paused", None, True))
            return
        interval_ms = int(self._settings.interval_seconds * 1000)
        self._timer.start(interval_ms)
        self.state_changed.emit(DispatcherState("idle", time.monotonic() + interval_ms / 1000))

    def _cycle(self, only: list[int] | None = None) -> CycleSummary:
        # The console's interval is kept with its runs (a Send now's run records none).
        options = replace(self._settings.dispatch_options(), interval_seconds=self._settings.interval_seconds)
        with self._client_factory() as client:
            return run_cycle(
                self._factory,
                client,
                self._settings.activity_mapping,
                options,
                progress=self.progress.emit,
                stop=self._stop,
                only=only,
            )


class DispatcherController(QObject):
    """Owns the worker thread: starts it, forwards commands, and stops it cleanly on close."""

    run_requested = Signal()
    #: "Send now": a cycle for these writeback ids only.
    send_requested = Signal(list)
    pause_requested = Signal(bool)
    settings_changed = Signal(object)
    #: To the worker's thread, where its timer is stopped or started again.
    _pause_changed = Signal(bool)

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
        self.send_requested.connect(self.worker.send_now)
        self.pause_requested.connect(self._pause)
        self._pause_changed.connect(self.worker.set_paused)
        self.settings_changed.connect(self.worker.apply_settings)

    def start(self) -> None:
        self.worker_thread.start()

    @Slot(bool)
    def _pause(self, paused: bool) -> None:
        # The flag first: a cycle under way sees it when it ends, so it never schedules a run between.
        self.worker.request_pause(paused)
        self._pause_changed.emit(paused)

    def stop(self, wait_ms: int = 60_000) -> bool:
        """Finish or release an in-flight cycle and end the thread; True if it ended in time."""
        self.worker.request_stop()
        if self.worker_thread.isRunning():
            # The timer lives in the worker thread and must be stopped there; this waits for a running
            # cycle, which the stop event has told to finish its requests and put the rest back.
            QMetaObject.invokeMethod(self.worker, "shutdown", Qt.ConnectionType.BlockingQueuedConnection)
        self.worker_thread.quit()
        return bool(self.worker_thread.wait(wait_ms))


@dataclass(frozen=True)
class RunsSeen:
    """The newest dispatcher run the database holds (None: never one), the database's time then, and
    the dispatchers holding a live lease then (sending now, their run not recorded yet)."""

    latest: runs.RunRecord | None
    now: datetime
    sending: tuple[str, ...] = ()


def read_runs(factory: sessionmaker[Session]) -> RunsSeen:
    """Read on a task thread: the newest run, the clock it is judged by (the database's) and who is
    sending now."""
    with read_session(factory) as session:
        return RunsSeen(*runs.latest_now_and_sending(session))


class RunWatch(QObject):
    """In a console that does not dispatch: the newest recorded run of whoever dispatches, read every
    ``RUN_WATCH_MS`` and whenever ``refresh`` is called (the change feed's news), always in the task pool.

    Signals:
        seen(RunsSeen): after each read.
        failed(str): a read failed, in words.
    """

    seen = Signal(object)
    failed = Signal(str)

    def __init__(
        self,
        factory: sessionmaker[Session],
        runner: TaskRunner,
        parent: QObject | None = None,
        *,
        interval_ms: int = RUN_WATCH_MS,
    ) -> None:
        super().__init__(parent)
        self._factory = factory
        self._tasks = TaskGroup(self, runner)
        self._task: Task | None = None
        self.timer = QTimer(self)
        self.timer.setObjectName("dispatcher-run-watch")
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.refresh)

    def start(self) -> None:
        self.timer.start()
        self.refresh()

    def stop(self) -> None:
        self.timer.stop()
        if self._task is not None:
            self._task.cancel()
            self._task = None

    @Slot()
    def refresh(self) -> None:
        if self._task is not None:
            return  # one read at a time; the one under way answers soon enough
        self._task = self._tasks.submit(read_runs, self._factory, on_done=self._read, on_error=self._failed)

    def _read(self, seen: RunsSeen) -> None:
        self._task = None
        self.seen.emit(seen)

    def _failed(self, exc: BaseException) -> None:
        self._task = None
        self.failed.emit(f"Could not read the dispatchers' last run: {exc}")


class ElidedLabel(QLabel):
    """One line that shortens itself with "…" to the room it gets; the whole text is its tooltip."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)

    def set_full_text(self, text: str, tooltip: str | None = None) -> None:
        self._full = text
        self.setToolTip(tooltip or text)
        self.updateGeometry()
        self._elide()

    def full_text(self) -> str:
        return self._full

    def sizeHint(self) -> QSize:
        # As wide as the whole text (not the shortened one shown), so it gets that room when there is.
        hint = super().sizeHint()
        return QSize(self.fontMetrics().horizontalAdvance(self._full) + 4, hint.height())

    def minimumSizeHint(self) -> QSize:
        return QSize(min(80, self.sizeHint().width()), super().minimumSizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, max(self.width(), 1))
        self.setText(shown)

    def text_fits(self) -> bool:
        return self.text() == self._full


def last_run_text(summary: CycleSummary) -> str:
    """The status bar's short word on the last run; the whole summary is its tooltip."""
    if summary.disabled:
        outcome = "writebacks are switched off"
    else:
        parts = [f"{summary.sent:,} sent", f"{summary.failed:,} failed"]
        if summary.no_remote_recipients:
            parts.append(f"{summary.no_remote_recipients:,} no remote recipients")
        if summary.released:
            parts.append(f"{summary.released:,} put back")
        outcome = ", ".join(parts) + ("; stopped early" if summary.stopped_reason else "")
    return f"Last run {summary.finished_at.astimezone():%H:%M}: {outcome}"


def _with_shortcut(action: QAction, text: str) -> str:
    key = action.shortcut()
    return f"{text} ({key.toString(QKeySequence.SequenceFormat.NativeText)})" if not key.isEmpty() else text


class DispatcherStatus(QWidget):
    """The status bar's dispatcher area: state, countdown, progress, last result, Run now and Pause.

    Run now and Pause are actions shared with the window's toolbar and Queue menu (``run_action``,
    ``pause_action``; made here, and wired to the controller, when the widget stands alone). The
    worker's state is the one source of truth: every control shows what it last reported, paused or
    not, with the matching label and tooltip, and Run now is disabled while the dispatcher is paused.
    """

    def __init__(
        self,
        controller: DispatcherController,
        parent: QWidget | None = None,
        *,
        run_action: QAction | None = None,
        pause_action: QAction | None = None,
    ) -> None:
        super().__init__(parent)
        self.controller = controller
        self._state = DispatcherState("idle", None)
        if run_action is None:
            run_action = QAction("Run dispatcher now", self)
            run_action.setToolTip("Start a dispatcher run now instead of waiting for the next one")
            run_action.triggered.connect(controller.run_requested)
        if pause_action is None:
            pause_action = QAction("Pause dispatcher", self)
            pause_action.setCheckable(True)
            pause_action.toggled.connect(controller.pause_requested)
        self.run_action = run_action
        self.pause_action = pause_action
        self.pause_action.setCheckable(True)
        #: Run now's own tooltip, kept while a disabled Run now says why it is disabled.
        self._run_tip: str | None = None
        #: This console leaves the dispatching to others: the controls stay disabled and saying so.
        self._elsewhere = False
        #: What the state label says of the run under way (a pause asked for meanwhile is added to it).
        self._running_text = "Dispatcher running…"
        #: The widest text the run under way can show (its total as both counts).
        self._running_room = ""
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.state_label = QLabel("Dispatcher starting…")
        #: The mode whose texts the state label's width is held for (see ``_say``).
        self._held_for: str | None = None
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(True)
        # A fixed size: its value and text change with every progress without laying the window out.
        self.progress_bar.setFixedSize(160, self.progress_bar.sizeHint().height())
        self.progress_bar.hide()
        self.last_label = ElidedLabel()
        self.run_button = QToolButton()
        self.run_button.setObjectName("runNowButton")
        self.run_button.setDefaultAction(run_action)
        self.pause_button = QToolButton()
        self.pause_button.setObjectName("pauseButton")
        self.pause_button.setDefaultAction(pause_action)
        for button in (self.run_button, self.pause_button):
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        layout.addWidget(self.state_label)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.last_label, 1)
        layout.addWidget(self.run_button)
        layout.addWidget(self.pause_button)
        # As tall as while a run shows its progress bar: when a run starts, the status bar keeps its
        # height, so the list above it is not resized and painted again whole (under a busy dispatcher
        # that repaint stalled the window for 200 ms and more).
        self.setMinimumHeight(max(self.sizeHint().height(), self.progress_bar.height()))
        worker = controller.worker
        worker.state_changed.connect(self.show_state)
        worker.progress.connect(self.show_progress)
        worker.finished.connect(self.show_summary)
        worker.failed.connect(self.show_failure)
        controller.pause_requested.connect(self._pause_asked)
        self._countdown = QTimer(self)
        self._countdown.setObjectName("dispatcher-countdown")
        self._countdown.setInterval(1000)
        self._countdown.timeout.connect(self._tick)
        self._countdown.start()
        self._show_controls(self._state)

    @Slot(object)
    def show_state(self, state: DispatcherState) -> None:
        if state.mode == "running" and self._state.mode != "running":
            self._running_room = ""
        self._state = state
        self._show_controls(state)
        if state.mode == "running":
            self.progress_bar.setRange(0, 0)
            self.progress_bar.show()
        else:
            self.progress_bar.hide()
        self._tick()

    @Slot(bool)
    def _pause_asked(self, paused: bool) -> None:
        # The worker takes the pause at once but reports it only when a run under way ends: until then
        # every control shows it already, and the state label says the run finishes first.
        self._state = replace(self._state, paused=paused)
        self._show_controls(self._state)
        self._tick()

    def show_not_dispatching(self) -> None:
        """This console does not run the dispatcher: Run now and Pause disabled, saying why; the last run
        shown is the newest one the database holds (``show_runs_seen``)."""
        self._elsewhere = True
        self._countdown.stop()
        for action in (self.run_action, self.pause_action):
            action.setEnabled(False)
            action.setToolTip(NOT_DISPATCHING_TIP)
        self._say("Dispatcher: not in this console")
        self.last_label.set_full_text("Reading the dispatchers' last run…")

    @Slot(object)
    def show_runs_seen(self, seen: RunsSeen) -> None:
        line, tooltip = runs.describe_latest(seen.latest, seen.now, sending=seen.sending)
        self.last_label.set_full_text(line, tooltip)

    def _show_controls(self, state: DispatcherState) -> None:
        """Every Run now and Pause control from the state: checked, label, tooltip, enabled."""
        if self._elsewhere:
            return
        pause = self.pause_action
        # Quietly: showing the state must not ask for it again (the toggle is the user's request).
        pause.blockSignals(True)
        pause.setChecked(state.paused)
        pause.blockSignals(False)
        if state.paused:
            pause.setText("Resume dispatcher")
            pause.setIconText("Resume")
            pause.setToolTip(_with_shortcut(pause, "Resume the dispatcher: runs start again on its timer"))
        else:
            pause.setText("Pause dispatcher")
            pause.setIconText("Pause")
            pause.setToolTip(_with_shortcut(pause, "Pause the dispatcher: no run starts until you resume it"))
        run = self.run_action
        run.setIconText("Run now")
        why_not = RUN_NOW_PAUSED_TIP if state.paused else None
        if why_not is None and state.mode in ("running", "stopping"):
            why_not = RUN_NOW_BUSY_TIP
        run.setEnabled(why_not is None)
        if why_not is not None:
            if self._run_tip is None:
                self._run_tip = run.toolTip()
            run.setToolTip(why_not)
        elif self._run_tip is not None:
            run.setToolTip(self._run_tip)
            self._run_tip = None

    @Slot(object)
    def show_progress(self, p: CycleProgress) -> None:
        done = p.sent + p.failed + p.no_remote_recipients
        total = done + p.remaining
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(done)
        self.progress_bar.setFormat(f"{done:,} / {total:,}")
        self._running_text = f"Dispatcher running: {p.sent:,} sent, {p.failed:,} failed"
        # All of it sent, or all of it failed: as wide as the counts of this run can make the text.
        self._running_room = f"Dispatcher running: {total:,} sent, {total:,} failed"
        self._show_running()

    def _show_running(self) -> None:
        ending = " (pauses when this run ends)" if self._state.paused else ""
        self._say(self._running_text + ending, self._running_room + ending)

    def _say(self, text: str, room_for: str = "") -> None:
        """Show the state in words without laying the window out again at every change of them.

        A label whose size hint changes makes the whole window lay itself out again, and with it the
        filter bar's layout, which is Python: while the dispatcher's threads keep the GIL busy, each of
        those calls waits for it (a run's progress stalled the window for 200 ms). So the label keeps a
        fixed size, as wide as ``room_for`` (the widest text the run can come to), widened only when a
        text does not fit, and sized afresh when the dispatcher's mode changes.
        """
        label = self.state_label
        metrics = label.fontMetrics()
        needed = max(metrics.horizontalAdvance(text), metrics.horizontalAdvance(room_for))
        needed += 2 * label.margin() + 2
        if self._held_for != self._state.mode or label.maximumWidth() < needed:
            label.setFixedSize(needed, label.sizeHint().height())
            self._held_for = self._state.mode
        label.setText(text)

    @Slot(object)
    def show_summary(self, summary: CycleSummary) -> None:
        when = f"{summary.finished_at.astimezone():%H:%M}"
        self.last_label.set_full_text(last_run_text(summary), f"Last run {when}: {summary.describe()}")

    @Slot(object)
    def show_failure(self, failure: CycleFailure) -> None:
        self.last_label.set_full_text(failure.text)

    @Slot()
    def _tick(self) -> None:
        if self._elsewhere:
            return
        state = self._state
        if state.mode == "running":
            if not self.progress_bar.format().strip("%p"):
                self._running_text = "Dispatcher running…"
            self._show_running()
            return
        if state.mode == "paused":
            self._say("Dispatcher paused")
        elif state.mode == "stopping":
            self._say("Dispatcher stopping…")
        elif state.next_run_at is not None:
            left = max(0, int(state.next_run_at - time.monotonic()))
            self._say(f"Next run in {left // 60}:{left % 60:02d}")
