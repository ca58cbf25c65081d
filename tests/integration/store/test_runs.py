"""Dispatcher runs in ``dispatcher_run``: each run recorded with its result and the queue it began with,
the sample counting exactly the waiting work, a database that gives out costing only the record, and
old runs trimmed."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import timedelta

from sqlalchemy import event, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import T0, add_mailing, enqueue, item, minutes
from tests.helpers.dispatching import client_for, cycle
from tests.helpers.simulator import SAMPLE_CONSTITUENTS, MakeSimulator
from writeback_console.domain import Kind, RunResult, utcnow
from writeback_console.sim.server import SaveEvent
from writeback_console.store import lifecycle, runs
from writeback_console.store.engine import make_engine, make_session_factory, read_session, write_transaction
from writeback_console.store.models import DispatcherRun
from writeback_console.store.models import Writeback as W

Factory = sessionmaker[Session]
KNOWN = str(SAMPLE_CONSTITUENTS[0]["email"])


def _count(factory: Factory) -> int:
    with factory() as session:
        return int(session.execute(select(func.count()).select_from(DispatcherRun)).scalar_one())


def test_a_run_is_recorded_with_its_result_its_counts_and_the_queue_it_began_with(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator()
    enqueue(factory, item(Kind.UNSUBSCRIBE, KNOWN), item(Kind.RESUBSCRIBE, KNOWN), now=utcnow() - minutes(5))

    summary = cycle(factory, client_for(sim), dispatcher="host-a:41", interval_seconds=600)

    with read_session(factory) as session:
        last = runs.latest_run(session)
        dialect = session.get_bind().dialect.name
    assert last is not None
    assert summary.sent == 2
    assert last.dispatcher == "host-a:41"
    assert last.result is RunResult.OK
    assert (last.claimed, last.sent, last.failed) == (2, 2, 0)
    assert last.interval_seconds == 600
    assert last.summary == summary.describe()
    assert last.started_at == summary.started_at and last.finished_at == summary.finished_at
    assert last.sample is not None and (last.sample.new, last.sample.scheduled, last.sample.error) == (
        2,
        0,
        0,
    )
    assert last.sample.oldest_at is not None and last.sample.oldest_at < summary.started_at
    # PostgreSQL names the database user itself; SQLite has none.
    assert last.db_user == ("writeback" if dialect == "postgresql" else None)
    assert "writeback" in last.who if dialect == "postgresql" else last.who == "host-a:41"


def test_a_send_now_and_a_switched_off_queue_are_recorded_too(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    from writeback_console.store import switches

    sim = make_simulator()
    [wid] = enqueue(factory, item(Kind.UNSUBSCRIBE, KNOWN))
    cycle(factory, client_for(sim), only=[wid], interval_seconds=600)
    with write_transaction(factory) as session:
        switches.set_setting(session, switches.WRITEBACK_ENABLED, False, actor="test")
    cycle(factory, client_for(sim), interval_seconds=600)

    with read_session(factory) as session:
        disabled, send_now = runs.latest_runs(session, 5)
    assert send_now.result is RunResult.OK and send_now.sent == 1
    assert send_now.interval_seconds is None  # a Send now says nothing of how often anyone runs
    assert disabled.result is RunResult.DISABLED
    assert disabled.summary == "writebacks are switched off: nothing was sent"
    assert disabled.interval_seconds == 600


def _set(factory: Factory, writeback_id: int, **values: object) -> None:
    # The statuses are set directly: the sample counts rows, however they came to be so.
    with write_transaction(factory) as session:
        session.execute(update(W).where(W.id == writeback_id).values(**values))


def test_the_sample_counts_exactly_new_due_scheduled_and_error_rows_with_attempts_left(
    factory: Factory,
) -> None:
    now = T0 + minutes(30)
    enqueue(factory, item(email="a@example.org"), item(email="b@example.org"), now=T0 + minutes(1))
    due, later = (add_mailing(factory, remote=1, name=name) for name in ("Due", "Later"))
    enqueue(
        factory,
        item(Kind.MAILING_ACTIVITY, mailing_id=due, scheduled_for=T0 + minutes(20)),
        item(Kind.MAILING_ACTIVITY, mailing_id=later, scheduled_for=T0 + minutes(90)),
        now=T0,
    )
    [retry_left] = enqueue(factory, item(email="c@example.org"), now=T0 - minutes(60))
    [waits_its_interval] = enqueue(factory, item(email="d@example.org"), now=T0 - minutes(50))
    [used_up] = enqueue(factory, item(email="e@example.org"), now=T0 - minutes(120))
    [sent] = enqueue(factory, item(email="f@example.org"), now=T0 - minutes(180))
    [processing] = enqueue(factory, item(email="g@example.org"), now=T0 - minutes(240))
    _set(factory, retry_left, status="error", attempts=1, next_attempt_at=T0)
    # Not yet due for its automatic retry, but waiting all the same: it counts.
    _set(factory, waits_its_interval, status="error", attempts=2, next_attempt_at=now + minutes(5))
    _set(factory, used_up, status="error", attempts=3, max_attempts=3)
    _set(factory, sent, status="sent", attempts=1, sent_at=T0)
    _set(factory, processing, status="processing", attempts=1, lease_expires_at=now + minutes(5))

    with read_session(factory) as session:
        sample = runs.queue_sample(session, now)

    assert (sample.new, sample.scheduled, sample.error) == (2, 1, 2)
    assert sample.total == 5
    # The oldest waiting row is the Error one with attempts left, not the older rows that do not wait.
    assert sample.oldest_at == T0 - minutes(60)


def test_the_sample_of_an_empty_queue_is_zero_with_no_oldest(factory: Factory) -> None:
    with read_session(factory) as session:
        sample = runs.queue_sample(session, T0)
    assert sample == runs.QueueSample(0, 0, 0, None)


def test_the_oldest_waiting_row_may_be_a_new_one(factory: Factory) -> None:
    enqueue(factory, item(email="a@example.org"), now=T0 - minutes(7))
    enqueue(factory, item(email="b@example.org"), now=T0 - minutes(3))
    with read_session(factory) as session:
        sample = runs.queue_sample(session, T0)
    assert sample == runs.QueueSample(2, 0, 0, T0 - minutes(7))


def test_runs_older_than_the_kept_days_are_trimmed(factory: Factory) -> None:
    with write_transaction(factory) as session:
        for age in (40, 36, 34, 1):
            at = T0 - timedelta(days=age)
            runs.record_run(
                session,
                dispatcher=f"d{age}",
                started_at=at,
                finished_at=at,
                result=RunResult.OK,
                summary="ok",
            )
    with write_transaction(factory) as session:
        assert runs.trim(session, T0) == 2
    with read_session(factory) as session:
        assert [r.dispatcher for r in runs.latest_runs(session, 10)] == ["d1", "d34"]


def test_a_cycle_trims_old_runs(factory: Factory, make_simulator: MakeSimulator) -> None:
    old = utcnow() - timedelta(days=runs.KEEP_DAYS + 1)
    with write_transaction(factory) as session:
        runs.record_run(
            session, dispatcher="gone", started_at=old, finished_at=old, result=RunResult.OK, summary=""
        )
    enqueue(factory, item(Kind.UNSUBSCRIBE, KNOWN))
    cycle(factory, client_for(make_simulator()))
    with read_session(factory) as session:
        assert [r.dispatcher for r in runs.latest_runs(session, 10)] == ["test-dispatcher:1"]


def test_the_newest_run_is_the_one_that_finished_last(factory: Factory) -> None:
    with write_transaction(factory) as session:
        runs.record_run(
            session,
            dispatcher="long",
            started_at=T0,
            finished_at=T0 + minutes(9),
            result=RunResult.OK,
            summary="",
        )
        runs.record_run(
            session,
            dispatcher="short",
            started_at=T0 + minutes(2),
            finished_at=T0 + minutes(3),
            result=RunResult.PROBLEM,
            summary="",
        )
    with read_session(factory) as session:
        last = runs.latest_run(session)
    assert last is not None and last.dispatcher == "long"


def test_no_run_recorded_is_none(factory: Factory) -> None:
    with read_session(factory) as session:
        assert runs.latest_run(session) is None


def test_a_database_that_gives_out_while_the_run_is_recorded_costs_the_record_not_the_run(
    db_url: str, make_simulator: MakeSimulator
) -> None:
    """The connection is dropped (PostgreSQL) or the file locked by another writer (SQLite) just as the
    run's row is written: the run ends with its summary all the same, and the next run is recorded."""
    sqlite = db_url.startswith("sqlite")
    engine = make_engine(f"{db_url}?busy_timeout_ms=200" if sqlite else db_url)
    factory = make_session_factory(engine)
    other = make_engine(db_url)
    enqueue(factory, item(Kind.UNSUBSCRIBE, KNOWN))
    armed = threading.Event()
    struck = threading.Event()
    release = threading.Event()

    def hold_the_file() -> None:
        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=30, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        struck.set()
        release.wait(20)
        conn.execute("ROLLBACK")
        conn.close()

    @event.listens_for(engine, "before_cursor_execute")
    def strike(conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if not armed.is_set() or struck.is_set():
            return
        if sqlite and statement.startswith("BEGIN IMMEDIATE"):
            threading.Thread(target=hold_the_file, daemon=True).start()
            struck.wait(5)
        elif not sqlite and statement.startswith("INSERT INTO dispatcher_run"):
            pid = conn.connection.dbapi_connection.info.backend_pid  # type: ignore[attr-defined]
            with other.connect() as killer:
                killer.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
            struck.set()

    sim = make_simulator()

    def on_save(_event: SaveEvent) -> None:
        armed.set()

    sim.on_save = on_save
    # Armed by the send, the fault meets the next transaction that writes: on SQLite the results' own
    # (which wait and retry), then the record, which is given up. The patience is short for the test.
    summary = cycle(factory, client_for(sim), database_patience=1.0)
    assert struck.is_set()
    release.set()
    time.sleep(0.3)
    assert summary.finished_at >= summary.started_at
    assert _count(factory) == 0

    armed.clear()
    cycle(factory, client_for(sim))
    assert _count(factory) == 1
    engine.dispose()
    other.dispose()


def test_a_live_lease_names_the_dispatcher_sending_now_and_keeps_the_banner_away(factory: Factory) -> None:
    # The last run finished 40 min ago with a 10 min interval: overdue, unless someone is busy sending
    # (a run longer than two intervals, a big mailing).
    now = utcnow()
    with write_transaction(factory) as session:
        runs.record_run(
            session,
            dispatcher="srv-1:77",
            started_at=now - minutes(41),
            finished_at=now - minutes(40),
            result=RunResult.OK,
            summary="",
            interval_seconds=600,
        )
    ids = enqueue(factory, *(item(email=f"p{k}@example.org") for k in range(3)))
    with read_session(factory) as session:
        latest, db_now, sending = runs.latest_now_and_sending(session)
    assert sending == ()
    assert runs.overdue_text(latest, db_now, 600, sending=sending) is not None

    with write_transaction(factory) as session:
        claimed = lifecycle.claim(session, dispatcher="srv-2:88", run_started_at=now, limit=2)
    assert len(claimed) == 2
    with read_session(factory) as session:
        latest, db_now, sending = runs.latest_now_and_sending(session)
    assert sending == ("srv-2:88",)
    assert runs.overdue_text(latest, db_now, 600, sending=sending) is None
    line, _tip = runs.describe_latest(latest, db_now, sending=sending)
    assert line.startswith("A dispatcher is sending now (holder srv-2:88). Last dispatcher run: srv-1:77")

    # A lease that ran out is a dispatcher that died, not one sending: the banner is back.
    for wid in ids:
        _set(factory, wid, lease_expires_at=now - minutes(1))
    with read_session(factory) as session:
        latest, db_now, sending = runs.latest_now_and_sending(session)
    assert sending == ()
    assert runs.overdue_text(latest, db_now, 600, sending=sending) is not None
