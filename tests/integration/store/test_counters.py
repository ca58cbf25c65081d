"""The per-status totals the database keeps, the bounded filtered counts, and stopping a superseded query:
on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import T0, enqueue, fail, item, minutes, run, send
from tests.helpers.dispatching import client_for, cycle
from tests.helpers.simulator import MakeSimulator
from writeback_console.domain import Kind, Status
from writeback_console.store import counters, listing, operator_actions
from writeback_console.store.engine import (
    QueryStop,
    QueryStopped,
    make_engine,
    make_session_factory,
    read_session,
    write_transaction,
)
from writeback_console.store.listing import WritebackFilter

Factory = sessionmaker[Session]


def real_counts(factory: Factory) -> dict[Status, int]:
    counts = dict.fromkeys(Status, 0)
    with read_session(factory) as session:
        for status, n in session.execute(text("SELECT status, count(*) FROM writeback GROUP BY status")):
            counts[Status(status)] = int(n)
    return counts


def kept(factory: Factory) -> dict[Status, int]:
    with read_session(factory) as session:
        return counters.totals(session)


def test_the_status_totals_follow_every_insert_change_and_delete(factory: Factory) -> None:
    assert kept(factory) == dict.fromkeys(Status, 0)
    ids = enqueue(factory, *(item(email=f"p{n}@example.org") for n in range(6)))
    assert kept(factory) == real_counts(factory) == {**dict.fromkeys(Status, 0), Status.NEW: 6}
    run(factory, T0)  # claims them all: six New become six Processing in one statement
    assert kept(factory) == real_counts(factory)
    send(factory, ids[0], T0 + timedelta(seconds=1))
    for wid in ids[1:4]:
        fail(factory, wid, T0 + timedelta(seconds=1))
    assert kept(factory) == real_counts(factory)
    with write_transaction(factory) as session:
        operator_actions.discard(session, [ids[1]], actor="advisor", reason="not needed", now=T0 + minutes(2))
    with write_transaction(factory) as session:
        session.execute(text("DELETE FROM writeback_event WHERE writeback_id = :i"), {"i": ids[0]})
        session.execute(text("DELETE FROM writeback WHERE id = :i"), {"i": ids[0]})
    counts = kept(factory)
    assert counts == real_counts(factory)
    assert counts[Status.SENT] == 0 and sum(counts.values()) == 5
    with write_transaction(factory) as session:
        counters.fold(session)
    assert kept(factory) == real_counts(factory)


def test_a_rolled_back_change_leaves_the_totals_as_they_were(factory: Factory) -> None:
    enqueue(factory, item(), item(email="bo@example.org"))
    before = kept(factory)
    with pytest.raises(RuntimeError), write_transaction(factory) as session:
        session.execute(text("UPDATE writeback SET status = 'cancelled', changed_by = 'x'"))
        raise RuntimeError("the operator's action failed half way")
    assert kept(factory) == before == real_counts(factory)


def test_folding_the_changes_keeps_the_totals_and_empties_what_waits(factory: Factory) -> None:
    enqueue(factory, *(item(email=f"p{n}@example.org") for n in range(3)))
    run(factory, T0)
    with write_transaction(factory) as session:
        counters.fold(session)
    with read_session(factory) as session:
        assert counters.pending_deltas(session) == 0
        assert counters.totals(session) == real_counts(factory)


def test_totals_stay_exact_while_writers_and_folds_run_at_the_same_time(pg_url: str) -> None:
    # PostgreSQL only: SQLite has one writer at a time, and its triggers update the totals in place.
    engine = make_engine(pg_url)
    factory = make_session_factory(engine)
    ids = enqueue(factory, *(item(email=f"p{n}@example.org") for n in range(40)))
    errors: list[BaseException] = []

    def flip(chosen: list[int], rounds: int) -> None:
        try:
            for n in range(rounds):
                status = "cancelled" if n % 2 == 0 else "new"
                with write_transaction(factory) as session:
                    session.execute(
                        text("UPDATE writeback SET status = :s WHERE id = ANY(:ids)"),
                        {"s": status, "ids": chosen},
                    )
                    if n % 3 == 0:
                        counters.fold(session)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=flip, args=(ids[k::4], 15)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert kept(factory) == real_counts(factory)
    engine.dispose()


def test_a_filtered_count_past_the_cap_is_a_labelled_lower_bound(factory: Factory) -> None:
    enqueue(factory, *(item(email=f"ann.{n}@example.org") for n in range(8)))
    enqueue(factory, item(kind=Kind.RESUBSCRIBE, email="bo@example.org"))
    flt = WritebackFilter(text="ann.")
    with read_session(factory) as session:
        exact = listing.bounded_counts(session, flt, cap=100)
        capped = listing.bounded_counts(session, flt, cap=5)
        unfiltered = listing.bounded_counts(session, WritebackFilter(statuses=frozenset({Status.NEW})), cap=5)
    assert not exact.bounded and exact.counts[Status.NEW] == 8 and exact.text(8) == "8"
    assert capped.bounded and capped.counts[Status.NEW] == 6 and capped.text(6) == "6+"
    # A status choice alone reads the kept totals: exact however many.
    assert not unfiltered.bounded and unfiltered.counts[Status.NEW] == 9


def slow_query(factory: Factory) -> str:
    if factory.kw["bind"].dialect.name == "postgresql":
        return "SELECT pg_sleep(30)"
    # Counting to a billion takes SQLite far longer than the test waits.
    return (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) "
        "SELECT count(*) FROM n"
    )


def test_a_superseded_query_is_stopped_in_the_database_not_just_ignored(factory: Factory) -> None:
    stop = QueryStop()
    outcome: list[BaseException | str] = []

    def read() -> None:
        try:
            with read_session(factory, stop) as session:
                session.execute(text(slow_query(factory))).all()
            outcome.append("finished")
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=read)
    worker.start()
    time.sleep(0.5)
    started = time.perf_counter()
    stop.stop()
    worker.join(10)
    assert not worker.is_alive(), "the stopped query kept running"
    assert time.perf_counter() - started < 5
    assert len(outcome) == 1 and isinstance(outcome[0], QueryStopped)
    # The connection went back to the pool fit for the next reader.
    with read_session(factory) as session:
        assert session.execute(text("SELECT 1")).scalar() == 1


def test_a_stop_after_the_query_ended_touches_nothing(factory: Factory) -> None:
    stop = QueryStop()
    with read_session(factory, stop) as session:
        assert session.execute(text("SELECT 1")).scalar() == 1
    stop.stop()
    with read_session(factory) as session:
        assert session.execute(text("SELECT 2")).scalar() == 2


def test_a_dispatcher_run_leaves_its_changes_folded_into_the_totals(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    people = [
        {"master_customer_id": f"{k + 3000:012d}", "sub_customer_id": 0, "email": f"c{k}@example.org"}
        for k in range(3)
    ]
    sim = make_simulator(constituents=people)
    sim.faults.fail_emails = ["c2@example.org"]
    enqueue(
        factory,
        *(
            item(Kind.RESUBSCRIBE, p["email"], master_customer_id=p["master_customer_id"], sub_customer_id=0)
            for p in people
        ),
    )
    summary = cycle(factory, client_for(sim))
    assert (summary.sent, summary.failed) == (2, 1)
    with read_session(factory) as session:
        assert counters.pending_deltas(session) == 0
        totals = counters.totals(session)
    assert totals == real_counts(factory)
    assert (totals[Status.SENT], totals[Status.ERROR]) == (2, 1)


def test_the_counts_of_a_kind_and_account_filter_are_kept_exact_too(factory: Factory) -> None:
    enqueue(
        factory,
        item(),
        item(email="bo@example.org"),
        item(Kind.RESUBSCRIBE, "cy@example.org"),
        item(email="di@example.org", account="Foundation"),
    )
    flt = WritebackFilter(kinds=frozenset({Kind.UNSUBSCRIBE}), accounts=frozenset({"Main"}))
    with read_session(factory) as session:
        kept_counts = listing.bounded_counts(session, flt)
        scanned = session.execute(
            text("SELECT count(*) FROM writeback WHERE kind = 'unsubscribe' AND account = 'Main'")
        ).scalar_one()
        by_kind = counters.totals(session, kinds=[Kind.RESUBSCRIBE])
    assert not kept_counts.bounded and kept_counts.counts[Status.NEW] == scanned == 2
    assert by_kind[Status.NEW] == 1
