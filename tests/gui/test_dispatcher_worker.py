"""The dispatcher runs on its timer in its own thread, reports progress, and stops cleanly."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QToolBar, QToolButton
from pytestqt.qtbot import QtBot
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import enqueue, item
from tests.helpers.dispatching import client_for
from tests.helpers.simulator import MakeSimulator
from writeback_console.dispatch.summary import CycleProgress, CycleSummary
from writeback_console.domain import Kind, Status, utcnow
from writeback_console.personify.client import PersonifyClient
from writeback_console.settings import AppSettings
from writeback_console.store import listing
from writeback_console.ui.composition_root import open_console
from writeback_console.ui.console import Console
from writeback_console.ui.dispatcher_worker import DispatcherController, DispatcherState, DispatcherStatus


def statuses(factory: sessionmaker[Session]) -> list[Status]:
    with factory() as session:
        return [r.status for r in listing.iter_rows(session, listing.WritebackFilter())]


def test_cycles_run_on_the_timer_in_the_worker_thread(
    qtbot: QtBot, factory: sessionmaker[Session], make_simulator: MakeSimulator
) -> None:
    sim = make_simulator()
    enqueue(factory, *(item(Kind.RESUBSCRIBE, "ann@example.org") for _ in range(5)))
    threads: list[int] = []

    def client() -> PersonifyClient:
        threads.append(threading.get_ident())
        return client_for(sim)

    controller = DispatcherController(factory, AppSettings(interval_seconds=1), client)
    status = DispatcherStatus(controller)
    qtbot.addWidget(status)
    summaries: list[CycleSummary] = []
    controller.worker.finished.connect(summaries.append)
    controller.start()
    try:
        qtbot.waitUntil(lambda: len(summaries) >= 2, timeout=15_000)
    finally:
        assert controller.stop()
    assert summaries[0].sent == 5 and summaries[1].claimed == 0
    assert set(statuses(factory)) == {Status.SENT}
    assert threads and threading.get_ident() not in threads
    assert "Last run" in status.last_label.text()


def test_run_now_pause_and_a_clean_stop_mid_cycle(
    qtbot: QtBot, factory: sessionmaker[Session], make_simulator: MakeSimulator
) -> None:
    sim = make_simulator()
    sim.faults.latency_ms = 30
    enqueue(
        factory,
        *(
            item(Kind.RESUBSCRIBE, "ann@example.org", master_customer_id="000000000101", sub_customer_id=0)
            for _ in range(300)
        ),
    )
    controller = DispatcherController(
        factory, AppSettings(interval_seconds=3600, concurrency=2), lambda: client_for(sim)
    )
    status = DispatcherStatus(controller)
    qtbot.addWidget(status)
    progress: list[object] = []
    controller.worker.progress.connect(progress.append)
    controller.start()
    qtbot.waitUntil(lambda: "Next run in" in status.state_label.text(), timeout=5000)
    status.run_button.click()
    qtbot.waitUntil(lambda: len(progress) >= 2, timeout=10_000)
    # Paused mid-cycle: the run goes on until it is stopped.
    status.pause_button.click()
    assert controller.stop(30_000)
    found = statuses(factory)
    assert Status.PROCESSING not in found
    assert 0 < found.count(Status.SENT) < 300
    assert len(sim.activities()) == found.count(Status.SENT)


def test_dispatcher_runs_every_ten_minutes_by_default(
    qtbot: QtBot, factory: sessionmaker[Session], make_simulator: MakeSimulator
) -> None:
    sim = make_simulator()
    settings = AppSettings()
    assert settings.interval_seconds == 600
    controller = DispatcherController(factory, settings, lambda: client_for(sim))
    status = DispatcherStatus(controller)
    qtbot.addWidget(status)
    controller.start()
    try:
        qtbot.waitUntil(lambda: status.state_label.text().startswith("Next run in 9:5"), timeout=5000)
    finally:
        assert controller.stop()


@pytest.fixture
def console(
    qtbot: QtBot, tmp_path: Path, sqlite_url: str, make_simulator: MakeSimulator
) -> Iterator[Console]:
    """The assembled console with its dispatcher running on an hourly timer."""
    from tests.gui.test_console import services_for

    services = services_for(tmp_path, sqlite_url, make_simulator())
    console = open_console(services, state_path=tmp_path / "window.ini")
    qtbot.addWidget(console.window)
    qtbot.waitUntil(lambda: "Next run in" in console.status.state_label.text(), timeout=5000)
    yield console
    console.shut_down()
    services.close()


def toolbar_button(console: Console, action: QAction) -> QToolButton:
    toolbar = console.window.findChild(QToolBar, "mainToolbar")
    assert toolbar is not None
    button = toolbar.widgetForAction(action)
    assert isinstance(button, QToolButton)
    return button


def paused_everywhere(console: Console) -> list[bool]:
    """What each Pause control shows: the menu item, the toolbar button, the status-bar button."""
    action = console.window.pause_action
    return [
        action.isChecked(),
        toolbar_button(console, action).isChecked(),
        console.status.pause_button.isChecked(),
    ]


def test_toolbar_pause_is_shown_by_every_pause_control(qtbot: QtBot, console: Console) -> None:
    console.window.pause_action.trigger()
    qtbot.waitUntil(lambda: console.status.state_label.text() == "Dispatcher paused", timeout=5000)
    assert paused_everywhere(console) == [True, True, True]
    assert console.status.pause_button.text() == "Resume"
    assert console.window.pause_action.text() == "Resume dispatcher"
    assert console.window.pause_action.toolTip().startswith("Resume the dispatcher")


def test_status_bar_pause_pauses_and_resumes_what_the_toolbar_and_menu_show(
    qtbot: QtBot, console: Console
) -> None:
    console.status.pause_button.click()
    qtbot.waitUntil(lambda: console.status.state_label.text() == "Dispatcher paused", timeout=5000)
    assert paused_everywhere(console) == [True, True, True]
    assert console.controller.worker.paused
    console.status.pause_button.click()
    qtbot.waitUntil(lambda: "Next run in" in console.status.state_label.text(), timeout=5000)
    assert paused_everywhere(console) == [False, False, False]
    assert console.status.pause_button.text() == "Pause"
    assert console.window.pause_action.text() == "Pause dispatcher"


def test_after_resume_no_pause_control_stays_pressed(qtbot: QtBot, console: Console) -> None:
    console.window.pause_action.trigger()
    qtbot.waitUntil(lambda: console.status.state_label.text() == "Dispatcher paused", timeout=5000)
    console.status.pause_button.click()
    qtbot.waitUntil(lambda: "Next run in" in console.status.state_label.text(), timeout=5000)
    assert paused_everywhere(console) == [False, False, False]
    assert not console.controller.worker.paused


def test_run_now_is_disabled_while_paused_and_says_why(qtbot: QtBot, console: Console) -> None:
    window, status = console.window, console.status
    assert window.run_now_action.isEnabled() and status.run_button.isEnabled()
    window.pause_action.trigger()
    qtbot.waitUntil(lambda: status.state_label.text() == "Dispatcher paused", timeout=5000)
    assert not window.run_now_action.isEnabled()
    assert not status.run_button.isEnabled()
    assert not toolbar_button(console, window.run_now_action).isEnabled()
    assert window.run_now_action.toolTip().startswith("The dispatcher is paused: Resume to run it")
    assert status.run_button.toolTip() == window.run_now_action.toolTip()
    window.pause_action.trigger()
    qtbot.waitUntil(lambda: "Next run in" in status.state_label.text(), timeout=5000)
    assert window.run_now_action.isEnabled() and status.run_button.isEnabled()
    assert "paused" not in window.run_now_action.toolTip()


def test_a_pause_asked_for_during_a_run_holds_when_the_run_ends(
    qtbot: QtBot, factory: sessionmaker[Session], make_simulator: MakeSimulator
) -> None:
    sim = make_simulator()
    sim.faults.latency_ms = 20
    enqueue(factory, *(item(Kind.RESUBSCRIBE, "ann@example.org") for _ in range(20)))
    controller = DispatcherController(
        factory, AppSettings(interval_seconds=3600, concurrency=1), lambda: client_for(sim)
    )
    status = DispatcherStatus(controller)
    qtbot.addWidget(status)
    states: list[DispatcherState] = []
    finished: list[CycleSummary] = []
    controller.worker.state_changed.connect(states.append)
    controller.worker.finished.connect(finished.append)
    controller.start()
    try:
        qtbot.waitUntil(lambda: "Next run in" in status.state_label.text(), timeout=5000)
        status.run_button.click()
        qtbot.waitUntil(lambda: bool(states) and states[-1].mode == "running", timeout=5000)
        status.pause_button.click()
        assert status.pause_button.isChecked()
        asked = len(states)
        qtbot.waitUntil(lambda: bool(finished) and states[-1].mode == "paused", timeout=15_000)
    finally:
        assert controller.stop()
    # No state between the request and the end of the run said "not paused", so no control flickered.
    assert all(state.paused for state in states[asked:])
    assert status.pause_button.isChecked() and not status.run_button.isEnabled()


def test_last_run_is_said_once_and_whole_in_a_1024_pixel_window(qtbot: QtBot, console: Console) -> None:
    window, status = console.window, console.status
    window.resize(1024, 700)
    window.show()
    qtbot.waitExposed(window)
    now = utcnow()
    summary = CycleSummary(now, now, claimed=1200, sent=1187, failed=13, released=4)
    console.controller.worker.finished.emit(summary)
    qtbot.waitUntil(lambda: status.last_label.full_text().startswith("Last run"), timeout=5000)
    # Laid out again for the new text, it fits whole.
    qtbot.waitUntil(status.last_label.text_fits, timeout=3000)
    assert "1,187 sent" in status.last_label.text() and "13 failed" in status.last_label.text()
    # The whole summary is one hover away, and the status bar does not say it a second time.
    assert summary.describe() in status.last_label.toolTip()
    assert "1,187" not in window.statusBar().currentMessage()


def test_send_now_while_paused_goes_out_at_resume_and_alone(
    qtbot: QtBot, factory: sessionmaker[Session], make_simulator: MakeSimulator
) -> None:
    """The console says a Send now asked for while paused "goes out after Resume": it does, at once,
    and it is still only that writeback (the hourly run's rows wait for it)."""
    sim = make_simulator()
    chosen, other = enqueue(
        factory, item(Kind.RESUBSCRIBE, "ann@example.org"), item(Kind.RESUBSCRIBE, "bo@x.org")
    )
    controller = DispatcherController(factory, AppSettings(interval_seconds=3600), lambda: client_for(sim))
    status = DispatcherStatus(controller)
    qtbot.addWidget(status)
    deferred: list[int] = []
    finished: list[CycleSummary] = []
    controller.worker.send_deferred.connect(deferred.append)
    controller.worker.finished.connect(finished.append)
    controller.start()
    try:
        qtbot.waitUntil(lambda: "Next run in" in status.state_label.text(), timeout=5000)
        status.pause_button.click()
        qtbot.waitUntil(lambda: status.state_label.text() == "Dispatcher paused", timeout=5000)
        controller.send_requested.emit([chosen])
        qtbot.waitUntil(lambda: deferred == [1], timeout=5000)
        assert finished == []
        status.pause_button.click()
        qtbot.waitUntil(lambda: len(finished) == 1, timeout=5000)
        qtbot.waitUntil(lambda: "Next run in 59:" in status.state_label.text(), timeout=5000)
    finally:
        assert controller.stop()
    with factory() as session:
        assert listing.get_writeback(session, chosen).status is Status.SENT
        assert listing.get_writeback(session, other).status is Status.NEW
    assert finished[0].claimed == 1


def test_send_now_for_a_switched_off_account_says_it_was_not_sent_and_why(
    qtbot: QtBot, console: Console
) -> None:
    """The Mailings page says the writeback "goes out now, on its own"; when its account is switched
    off nothing goes, and the status bar said only "Last run: 0 sent, 0 failed"."""
    from writeback_console import operations

    factory = console.services.factory
    (wid,) = enqueue(factory, item(Kind.RESUBSCRIBE, "ann@example.org"))
    operations.set_writeback_by_account(factory, {"Main": False}, actor="staff@desk")
    with factory() as session:
        ref = listing.get_writeback(session, wid).ref
    console.controller.send_requested.emit([wid])
    bar = console.window.statusBar()
    qtbot.waitUntil(lambda: "not sent" in bar.currentMessage(), timeout=5000)
    assert ref in bar.currentMessage()
    assert "account Main is switched off" in bar.currentMessage()


def test_the_next_run_never_starts_before_one_interval_after_the_last_run_ended(
    qtbot: QtBot, factory: sessionmaker[Session], make_simulator: MakeSimulator
) -> None:
    """An automatic retry is due one interval after the failure, so the next regular run must not come
    sooner than one interval after the run that failed it ended. Qt makes a coarse timer of 20 s or
    more a very coarse one, rounded to whole seconds: a ten-minute timer fired up to half a second
    early, and the rows that failed in the last half second of a run (its last batch) waited a second
    interval, twenty minutes, for their retry. A precise timer never fires early."""
    from PySide6.QtCore import Qt, QTimer

    sim = make_simulator()
    controller = DispatcherController(factory, AppSettings(interval_seconds=600), lambda: client_for(sim))
    status = DispatcherStatus(controller)
    qtbot.addWidget(status)
    controller.start()
    try:
        qtbot.waitUntil(lambda: "Next run in" in status.state_label.text(), timeout=5000)
        timer = controller.worker.findChild(QTimer, "dispatcher-interval")
        assert timer is not None
        assert timer.timerType() is Qt.TimerType.PreciseTimer
    finally:
        assert controller.stop()


def test_pause_pressed_during_a_run_shows_resume_at_once_and_says_the_run_ends_first(
    qtbot: QtBot, tmp_path: Path, sqlite_url: str, make_simulator: MakeSimulator
) -> None:
    from tests.gui.test_console import services_for

    sim = make_simulator()
    sim.faults.latency_ms = 40
    services = services_for(tmp_path, sqlite_url, sim)
    enqueue(services.factory, *(item(Kind.RESUBSCRIBE, f"p{n}@example.org") for n in range(40)))
    console = open_console(services, state_path=tmp_path / "window.ini")
    qtbot.addWidget(console.window)
    window, status = console.window, console.status
    try:
        qtbot.waitUntil(lambda: "Next run in" in status.state_label.text(), timeout=5000)
        window.run_now_action.trigger()
        qtbot.waitUntil(lambda: status.state_label.text().startswith("Dispatcher running"), timeout=5000)
        toolbar_button(console, window.pause_action).click()
        # At once, while the run goes on: every Pause control is pressed and offers Resume.
        assert paused_everywhere(console) == [True, True, True]
        assert window.pause_action.text() == "Resume dispatcher"
        assert toolbar_button(console, window.pause_action).text() == "Resume"
        assert status.pause_button.text() == "Resume"
        assert status.state_label.text().startswith("Dispatcher running")
        assert status.state_label.text().endswith("(pauses when this run ends)")
        qtbot.waitUntil(lambda: status.state_label.text() == "Dispatcher paused", timeout=15_000)
        assert paused_everywhere(console) == [True, True, True] and status.pause_button.text() == "Resume"
    finally:
        console.shut_down()
        services.close()


class _LayoutRequests(QObject):
    """The layout requests a widget receives, by widget."""

    def __init__(self) -> None:
        super().__init__()
        #: The widgets asked, by class and object name.
        self.asked: list[str] = []

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:
            self.asked.append(f"{type(watched).__name__} {watched.objectName()}")
        return False


def test_progress_during_a_run_does_not_lay_the_window_out_again(qtbot: QtBot, console: Console) -> None:
    # Every relayout of the window calls the filter bar's Python layout; while the dispatcher's threads
    # hold the GIL, each of those calls waits for it, and the window stalled for 200 ms per progress.
    window, status = console.window, console.status
    window.resize(1024, 700)
    window.show()
    qtbot.waitExposed(window)
    status.show_state(DispatcherState("running", None))
    status.show_progress(CycleProgress(200, 0, 0, 0, 16, 4800))
    qtbot.wait(50)
    # A change of size in the status bar's words starts at the dispatcher's own widget, whose layout
    # asks to be done again, and goes from there up to the window (whatever else the window does).
    requests = _LayoutRequests()
    status.installEventFilter(requests)
    for done in (400, 1000, 1111, 2500, 4321, 4999):
        status.show_progress(CycleProgress(200, done, done // 100, 0, 16, 5000 - done))
        QApplication.processEvents()
        assert status.state_label.text().startswith(f"Dispatcher running: {done:,} sent")
    qtbot.wait(50)
    assert requests.asked == []
    label = status.state_label
    assert label.width() >= label.fontMetrics().horizontalAdvance(label.text())  # never cut short


def test_a_run_starting_and_ending_leaves_the_list_its_size(qtbot: QtBot, console: Console) -> None:
    # The progress bar is taller than the status bar's words: a status bar that grew when it appeared
    # resized the list, which was then painted again whole while the dispatcher's threads held the GIL.
    window, status = console.window, console.status
    window.resize(1024, 700)
    window.show()
    qtbot.waitExposed(window)
    table = window.writebacks.table
    before = table.geometry()
    status.show_state(DispatcherState("running", None))
    qtbot.wait(50)
    assert status.progress_bar.isVisible()
    assert table.geometry() == before
    status.show_state(DispatcherState("idle", None))
    qtbot.wait(50)
    assert not status.progress_bar.isVisible() and table.geometry() == before
