"""Automatic retries keep the dispatcher's rhythm, and "Send now" sends one writeback, not the queue.

Reproduced: "Send now" on a mailing started a full dispatcher run, so every retryable Error row got another
automatic attempt at once; one row used all three of its attempts at 07:52, 07:55 and 07:56. The rules:
an automatic retry is due no sooner than one dispatcher interval after the failure, whatever starts a
run; rows put back after an interruption (a dispatcher that died, an outage) are due at once, since
they did not fail; "Send now" sends that mailing's writeback, and only it, at once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import T0, add_mailing, enqueue, item, row, run
from tests.helpers.dispatching import client_for, cycle, recipients_as_constituents
from tests.helpers.simulator import MakeSimulator
from writeback_console import operations
from writeback_console.dispatch.summary import ProblemKind
from writeback_console.domain import Kind, Status
from writeback_console.store import lifecycle, recording
from writeback_console.store.engine import write_transaction
from writeback_console.store.models import Writeback

Factory = sessionmaker[Session]
TEN_MINUTES = 600


def person(k: int) -> dict[str, Any]:
    return {
        "master_customer_id": f"{k + 2000:012d}",
        "sub_customer_id": 0,
        "email": f"q{k}@example.org",
        "first_name": "Q",
        "last_name": str(k),
    }


def known(k: int) -> Any:
    return item(
        Kind.RESUBSCRIBE, f"q{k}@example.org", master_customer_id=f"{k + 2000:012d}", sub_customer_id=0
    )


def test_an_automatic_retry_waits_one_dispatcher_interval_whatever_starts_the_run(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    """Run now three minutes after a failure (here: at once) does not spend the row's next attempt."""
    sim = make_simulator(constituents=[person(0)])
    sim.faults.fail_emails = ["q0@example.org"]
    (wid,) = enqueue(factory, known(0))
    client = client_for(sim)

    assert cycle(factory, client, retry_interval_seconds=TEN_MINUTES).failed == 1
    failed = row(factory, wid)
    assert failed.attempts == 1 and failed.next_attempt_at is not None
    assert failed.next_attempt_at - failed.updated_at == timedelta(seconds=TEN_MINUTES)

    again = cycle(factory, client, retry_interval_seconds=TEN_MINUTES)
    assert again.claimed == 0
    assert (row(factory, wid).status, row(factory, wid).attempts) == (Status.ERROR, 1)

    # Once the interval has passed (moved back here rather than waited for), the retry goes.
    with write_transaction(factory) as session:
        session.execute(
            update(Writeback).where(Writeback.id == wid).values(next_attempt_at=failed.updated_at)
        )
    assert cycle(factory, client, retry_interval_seconds=TEN_MINUTES).claimed == 1
    assert row(factory, wid).attempts == 2


def test_a_second_dispatcher_with_a_shorter_interval_keeps_the_failing_dispatchers_rhythm(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    """The due time is stored with the failure: another dispatcher's settings do not bring it forward."""
    sim = make_simulator(constituents=[person(0)])
    sim.faults.fail_emails = ["q0@example.org"]
    (wid,) = enqueue(factory, known(0))
    client = client_for(sim)
    cycle(factory, client, retry_interval_seconds=TEN_MINUTES, dispatcher="console:1")
    assert cycle(factory, client, retry_interval_seconds=1, dispatcher="headless:2").claimed == 0
    assert row(factory, wid).attempts == 1


def test_send_now_sends_only_that_mailings_writeback(factory: Factory, make_simulator: MakeSimulator) -> None:
    sim = make_simulator(constituents=[person(0), person(1), *recipients_as_constituents(3)])
    sim.faults.fail_emails = ["q0@example.org"]
    failing, waiting = enqueue(factory, known(0), known(1))
    client = client_for(sim)
    # The failing row failed long ago: a full run now would retry it.
    cycle(factory, client, only=[failing])
    with write_transaction(factory) as session:
        session.execute(
            update(Writeback).where(Writeback.id == failing).values(next_attempt_at=T0 - timedelta(days=1))
        )
    mailing = add_mailing(factory, remote=3)
    activity = operations.send_mailing_activity_now(factory, mailing, actor="staff@desk")
    activities_before = len(sim.activities())

    summary = cycle(factory, client, only=[activity.id])

    assert (summary.claimed, summary.sent) == (1, 1)
    assert row(factory, activity.id).status is Status.SENT
    assert len(sim.activities()) == activities_before + 3
    assert (row(factory, failing).status, row(factory, failing).attempts) == (Status.ERROR, 1)
    assert (row(factory, waiting).status, row(factory, waiting).attempts) == (Status.NEW, 0)
    # A targeted run schedules no other mailing's activity either.
    assert summary.auto_scheduled == 0


def test_rows_put_back_after_an_outage_are_due_at_once(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(constituents=[person(k) for k in range(3)])
    sim.faults.fail_emails = ["q0@example.org"]
    (wid,) = enqueue(factory, known(0))
    client = client_for(sim)
    cycle(factory, client, retry_interval_seconds=1)
    with write_transaction(factory) as session:  # its retry has come due
        session.execute(
            update(Writeback).where(Writeback.id == wid).values(next_attempt_at=T0 - timedelta(days=1))
        )
    sim.faults.fail_emails = []
    sim.faults.update(fail_rate=1.0, fail_kinds=["502"])  # no Retry-After to wait for
    outage = cycle(factory, client, retry_interval_seconds=TEN_MINUTES)
    assert outage.problem is ProblemKind.OUTAGE
    assert (row(factory, wid).status, row(factory, wid).attempts) == (Status.ERROR, 1)

    sim.faults.update(fail_rate=0.0, fail_kinds=[])
    after = cycle(factory, client, retry_interval_seconds=TEN_MINUTES)
    assert after.sent == 1 and row(factory, wid).status is Status.SENT


def test_rows_taken_back_from_a_dead_dispatcher_are_due_at_once(factory: Factory) -> None:
    """Both the free first interruption and the counted second one: the row did not fail, its holder did."""
    (wid,) = enqueue(factory, item())
    for interruption in (1, 2):
        assert [c.id for c in run(factory, T0, dispatcher=f"dead:{interruption}")] == [wid]
        with write_transaction(factory) as session:
            session.execute(
                update(Writeback)
                .where(Writeback.id == wid)
                .values(lease_expires_at=T0 - timedelta(seconds=1))
            )
            assert recording.recover_expired_leases(session, now=T0) == [wid]
        with write_transaction(factory) as session:
            again = lifecycle.claim(session, dispatcher="next:1", run_started_at=T0, now=T0, limit=10)
            assert [c.id for c in again] == [wid], f"interruption {interruption}"
            session.rollback()


def test_send_now_of_more_writebacks_than_one_statement_takes_parameters_sends_them(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    """Retry with "send now" on every row matching a filter after a long outage names tens of thousands
    of rows; PostgreSQL takes at most 65,535 parameters a statement, and the run failed outright."""
    sim = make_simulator(constituents=[person(0), person(1)])
    chosen = enqueue(factory, known(0), known(1))
    # Ids of rows that are not in the queue (sent and purged, say) cost nothing but their parameter.
    many = [*range(10_000_000, 10_070_000), *chosen]

    summary = cycle(factory, client_for(sim), only=many)

    assert summary.problem is None
    assert (summary.claimed, summary.sent) == (2, 2)
