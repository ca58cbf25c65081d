"""The dispatcher runs on its timer in its own thread, reports progress, and stops cleanly."""

from __future__ import annotations

import threading

from pytestqt.qtbot import QtBot
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import enqueue, item
from tests.helpers.dispatching import client_for
from tests.helpers.simulator import MakeSimulator
from writeback_console.dispatch.summary import CycleSummary
from writeback_console.domain import Kind, Status
from writeback_console.personify.client import PersonifyClient
from writeback_console.settings import AppSettings
from writeback_console.store import listing
from writeback_console.ui.dispatcher_worker import DispatcherController, DispatcherStatus


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
    status.pause_button.click()
    qtbot.waitUntil(lambda: status.state_label.text() == "Dispatcher paused", timeout=5000)
    status.run_button.click()
    qtbot.waitUntil(lambda: len(progress) >= 2, timeout=10_000)
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
