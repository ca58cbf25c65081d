"""A console that does not dispatch: no dispatcher runs in it, Run now and Pause say why they are
disabled, the status bar shows the newest run recorded by whoever dispatches, and a banner says when
nobody has run for two intervals (unless a dispatcher holds a live lease: it is sending now)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy.orm import Session, sessionmaker

from tests.gui.test_console import services_for
from tests.helpers.builders import enqueue, item
from tests.helpers.simulator import MakeSimulator
from writeback_console.domain import Kind, RunResult, Status, utcnow
from writeback_console.settings import AppSettings, PasswordStore, save_settings
from writeback_console.store import lifecycle, listing, runs
from writeback_console.store.engine import make_engine, make_session_factory, write_transaction
from writeback_console.ui.composition_root import open_console, start_services
from writeback_console.ui.console import Console
from writeback_console.ui.dispatcher_worker import NOT_DISPATCHING_TIP
from writeback_console.ui.main_window import BANNER_NO_DISPATCHER

Factory = sessionmaker[Session]


def _record(
    factory: Factory, *, finished: datetime, interval: int | None = 600, who: str = "srv-1:77"
) -> None:
    """A run recorded by another process: its own engine and connection."""
    with write_transaction(factory) as session:
        runs.record_run(
            session,
            dispatcher=who,
            started_at=finished - timedelta(seconds=2),
            finished_at=finished,
            result=RunResult.OK,
            summary="claimed 3, sent 3, failed 0 in 2.0 s",
            claimed=3,
            sent=3,
            interval_seconds=interval,
        )


@pytest.fixture
def console(qtbot: QtBot, tmp_path: Path, db_url: str, make_simulator: MakeSimulator) -> Iterator[Console]:
    sim = make_simulator()
    services = services_for(tmp_path, db_url, sim)
    if db_url.startswith("sqlite"):
        # A SQLite console dispatches unless told not to; PostgreSQL's does not by default.
        services.settings = replace(services.settings, runs_dispatcher=False)
    made = open_console(services, state_path=tmp_path / "window.ini")
    qtbot.addWidget(made.window)
    assert made.run_watch is not None
    made.run_watch.timer.setInterval(300)  # the console reads every 30 s; the test cannot wait that long
    yield made
    made.shut_down()
    services.close()


@pytest.fixture
def other(db_url: str) -> Iterator[Factory]:
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


def test_no_dispatcher_runs_in_it_even_with_due_rows(qtbot: QtBot, console: Console) -> None:
    ids = enqueue(console.services.factory, *(item(Kind.RESUBSCRIBE, f"p{n}@example.org") for n in range(3)))
    assert not console.controller.worker_thread.isRunning()
    qtbot.wait(1500)
    with console.services.factory() as session:
        assert {r.status for r in listing.get_writebacks(session, ids).values()} == {Status.NEW}
    assert console.status.state_label.text() == "Dispatcher: not in this console"


def test_run_now_and_pause_are_disabled_saying_why(console: Console) -> None:
    window = console.window
    for action in (window.run_now_action, window.pause_action):
        assert not action.isEnabled()
        assert action.toolTip().startswith(NOT_DISPATCHING_TIP)
    assert not console.status.run_button.isEnabled()


def test_the_status_bar_shows_a_run_recorded_elsewhere_within_its_refresh(
    qtbot: QtBot, console: Console, other: Factory
) -> None:
    label = console.status.last_label
    qtbot.waitUntil(lambda: "No dispatcher run recorded" in label.full_text(), timeout=10_000)
    _record(other, finished=utcnow())
    qtbot.waitUntil(lambda: "srv-1:77" in label.full_text(), timeout=10_000)
    text = label.full_text()
    assert text.startswith("Last dispatcher run: srv-1:77")
    assert "just now, ok: claimed 3, sent 3, failed 0" in text
    assert "local time" in label.toolTip() and "runs every 10 min" in label.toolTip()
    if console.services.engine.dialect.name == "postgresql":
        assert "(writeback)" in text  # the database user it ran as


def test_the_banner_shows_when_no_run_for_two_intervals_and_goes_with_a_fresh_run(
    qtbot: QtBot, console: Console, other: Factory
) -> None:
    window = console.window
    qtbot.waitUntil(lambda: window.banner_text(BANNER_NO_DISPATCHER) is not None, timeout=10_000)
    assert window.banner_text(BANNER_NO_DISPATCHER) == (
        "No dispatcher has ever run on this queue; writebacks are not being sent. "
        "Start one: writeback-console dispatch --forever"
    )
    # Ran every 10 min, and last 26 min ago: more than two intervals.
    old = utcnow() - timedelta(minutes=26)
    _record(other, finished=old)
    qtbot.waitUntil(lambda: "26 min ago" in (window.banner_text(BANNER_NO_DISPATCHER) or ""), timeout=10_000)
    # The clock time, with the date when that was not today (a test run just after midnight).
    since = f"{old.astimezone():%H:%M}"
    if old.astimezone().date() != utcnow().astimezone().date():
        since = f"{old.astimezone():%Y-%m-%d %H:%M}"
    assert window.banner_text(BANNER_NO_DISPATCHER) == (
        f"No dispatcher has run since {since} (26 min ago); writebacks are not being sent. "
        "Start one: writeback-console dispatch --forever"
    )
    _record(other, finished=utcnow())
    qtbot.waitUntil(lambda: window.banner_text(BANNER_NO_DISPATCHER) is None, timeout=10_000)


def test_a_run_without_an_interval_is_judged_by_the_console_s_own(
    qtbot: QtBot, console: Console, other: Factory
) -> None:
    # The console's interval is an hour (services_for): a --once run 90 min ago is overdue, 50 min is not.
    window = console.window
    _record(other, finished=utcnow() - timedelta(minutes=50), interval=None)
    qtbot.waitUntil(lambda: "srv-1:77" in console.status.last_label.full_text(), timeout=10_000)
    assert window.banner_text(BANNER_NO_DISPATCHER) is None
    _record(other, finished=utcnow() - timedelta(minutes=130), interval=None, who="older")
    qtbot.wait(900)
    assert window.banner_text(BANNER_NO_DISPATCHER) is None  # the newest run is what counts


def test_send_now_leaves_the_row_due_for_the_dispatchers(qtbot: QtBot, console: Console) -> None:
    [wid] = enqueue(console.services.factory, item(Kind.RESUBSCRIBE, "ann@example.org"))
    console.send_now([wid])
    assert "a dispatcher sends it on its next run" in console.mailings.status_label.text()
    qtbot.wait(500)
    with console.services.factory() as session:
        assert listing.get_writeback(session, wid).status is Status.NEW
    assert not console.controller.worker_thread.isRunning()


def test_a_postgresql_console_does_not_dispatch_unless_its_settings_say_so(
    qtbot: QtBot, tmp_path: Path, pg_url: str, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator()
    path = tmp_path / "settings.json"
    store = PasswordStore(fallback=tmp_path / "credentials.json", use_keyring=False)
    for chosen, dispatching in ((None, False), (True, True)):
        save_settings(AppSettings(service_root_url=sim.url, user="u", runs_dispatcher=chosen), path)
        services = start_services(pg_url, settings_path=path, password_store=store)
        console = open_console(services, state_path=tmp_path / "window.ini")
        qtbot.addWidget(console.window)
        try:
            assert (console.run_watch is None) is dispatching
            thread = console.controller.worker_thread
            qtbot.waitUntil(lambda: thread.isRunning() is dispatching, timeout=5000)  # noqa: B023
        finally:
            console.shut_down()
            services.close()


def test_a_run_longer_than_two_intervals_shows_no_banner_while_its_dispatcher_sends(
    qtbot: QtBot, console: Console, other: Factory
) -> None:
    window = console.window
    label = console.status.last_label
    _record(other, finished=utcnow() - timedelta(minutes=26))
    qtbot.waitUntil(lambda: "26 min ago" in (window.banner_text(BANNER_NO_DISPATCHER) or ""), timeout=10_000)
    # A big mailing: a dispatcher has held its rows' lease since long before and is sending still.
    enqueue(other, *(item(Kind.RESUBSCRIBE, f"p{n}@example.org") for n in range(3)))
    with write_transaction(other) as session:
        assert lifecycle.claim(session, dispatcher="srv-2:88", run_started_at=utcnow(), limit=10)
    assert console.run_watch is not None
    console.run_watch.refresh()
    qtbot.waitUntil(lambda: window.banner_text(BANNER_NO_DISPATCHER) is None, timeout=10_000)
    qtbot.waitUntil(lambda: "sending now" in label.full_text(), timeout=10_000)
    assert label.full_text().startswith("A dispatcher is sending now (holder srv-2:88). Last dispatcher run")
    assert "srv-2:88" in label.toolTip()
