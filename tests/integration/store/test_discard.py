"""Discarding an Error row: the status rules of Discarded at the queue level, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import T0, add_mailing, enqueue, fail, fail_runs, item, minutes, row, run, send
from writeback_console.domain import Kind, Status
from writeback_console.store import audit_trail, history, listing, operator_actions
from writeback_console.store.engine import write_transaction
from writeback_console.store.rows import DiscardRefused, QueueError

Factory = sessionmaker[Session]
ADVISOR = "advisor@desk"


def discard(factory: Factory, ids: list[int], reason: str = "constituent merged; not needed", **kw: object):
    with write_transaction(factory) as session:
        return operator_actions.discard(
            session, ids, actor=ADVISOR, reason=reason, now=T0 + minutes(90), **kw
        )


def test_only_error_rows_can_be_discarded(factory: Factory) -> None:
    sent_id, error_id = enqueue(factory, item(), item(email="bo@example.org"))
    run(factory, T0)
    send(factory, sent_id, T0 + timedelta(seconds=1))
    fail(factory, error_id, T0 + timedelta(seconds=1))
    (new_id,) = enqueue(factory, item(email="cy@example.org"))

    for wid, status in ((sent_id, "Sent"), (new_id, "New")):
        with pytest.raises(DiscardRefused) as refused:
            discard(factory, [wid])
        assert f"status is {status}, only Error rows can be discarded" in str(refused.value)
    # An Error row with automatic retries still to come may be discarded: that is what stops them.
    result = discard(factory, [error_id])
    assert [i for i, _ in result.discarded] == [error_id]
    assert row(factory, error_id).status is Status.DISCARDED
    assert (row(factory, sent_id).status, row(factory, new_id).status) == (Status.SENT, Status.NEW)


def test_a_processing_row_is_never_discarded(factory: Factory) -> None:
    (wid,) = enqueue(factory, item())
    run(factory, T0)
    with pytest.raises(DiscardRefused) as refused:
        discard(factory, [wid])
    assert "a dispatcher is sending it right now" in str(refused.value)
    assert row(factory, wid).status is Status.PROCESSING


def test_discarded_row_is_never_claimed(factory: Factory) -> None:
    (wid,) = enqueue(factory, item())
    fail_runs(factory, wid, 1)
    discard(factory, [wid])
    # It had two automatic retries left; none of them happens.
    for n in range(1, 6):
        assert run(factory, T0 + minutes(10 * n + 100)) == []
    r = row(factory, wid)
    assert (r.status, r.attempts, r.max_attempts) == (Status.DISCARDED, 1, 3)


def test_manual_retry_of_discarded_row_gives_one_attempt(factory: Factory) -> None:
    (wid,) = enqueue(factory, item())
    fail_runs(factory, wid, 1)
    discard(factory, [wid])
    with write_transaction(factory) as session:
        result = operator_actions.manual_retry(session, [wid], actor=ADVISOR, now=T0 + minutes(100))
    assert [i for i, _ in result.retried] == [wid]
    r = row(factory, wid)
    assert (r.status, r.attempts, r.max_attempts) == (Status.NEW, 1, 2)
    claimed = run(factory, T0 + minutes(110))
    assert [c.id for c in claimed] == [wid]
    fail(factory, wid, T0 + minutes(110) + timedelta(seconds=1))
    # Exactly one: the automatic retries it had before the discard do not come back.
    assert run(factory, T0 + minutes(130)) == []
    assert row(factory, wid).status is Status.ERROR


def test_a_discard_keeps_its_reason_who_and_when(factory: Factory) -> None:
    (wid,) = enqueue(factory, item())
    fail_runs(factory, wid, 3)
    discard(factory, [wid], reason="  member asked us to stop  ", filter={"error_text": "does not exist"})
    with factory() as session:
        (audit,) = audit_trail.audit_of(session, wid)
        events = history.events_of(session, wid)
    assert (audit.action, audit.actor, audit.at) == ("discard", ADVISOR, T0 + minutes(90))
    assert audit.detail == {"reason": "member asked us to stop"}
    assert audit.filter == {"error_text": "does not exist"}
    last = events[-1]
    assert (last.from_status, last.to_status, last.actor, last.at) == (
        Status.ERROR,
        Status.DISCARDED,
        ADVISOR,
        T0 + minutes(90),
    )
    # The attempt history stays as it was.
    assert row(factory, wid).attempts == 3


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501])
def test_a_discard_needs_a_reason(factory: Factory, reason: str) -> None:
    (wid,) = enqueue(factory, item())
    fail_runs(factory, wid, 1)
    with pytest.raises(QueueError, match="reason"):
        discard(factory, [wid], reason=reason)
    assert row(factory, wid).status is Status.ERROR


def test_a_discard_of_many_refuses_all_when_one_is_not_in_error(factory: Factory) -> None:
    error_id, sent_id = enqueue(factory, item(), item(email="bo@example.org"))
    run(factory, T0)
    fail(factory, error_id, T0 + timedelta(seconds=1))
    send(factory, sent_id, T0 + timedelta(seconds=1))
    with pytest.raises(DiscardRefused):
        discard(factory, [error_id, sent_id])
    assert row(factory, error_id).status is Status.ERROR
    result = discard(factory, [error_id, sent_id], skip_ineligible=True)
    assert [i for i, _ in result.discarded] == [error_id] and [r.id for r in result.skipped] == [sent_id]


def test_a_discarded_mailing_activity_still_holds_its_mailing(factory: Factory) -> None:
    mailing = add_mailing(factory, remote=2)
    with write_transaction(factory) as session:
        wid = operator_actions.schedule_mailing_activity(session, mailing, at=None, actor=ADVISOR, now=T0).id
    run(factory, T0 + minutes(1))
    fail(factory, wid, T0 + minutes(2))
    discard(factory, [wid])
    # Staff cannot make a second row for the mailing; retrying the discarded one is the way.
    with write_transaction(factory) as session, pytest.raises(QueueError, match="retry that one instead"):
        operator_actions.schedule_mailing_activity(
            session, mailing, at=None, actor=ADVISOR, now=T0 + minutes(95)
        )
    with write_transaction(factory) as session:
        operator_actions.manual_retry(session, [wid], actor=ADVISOR, now=T0 + minutes(96))
    assert row(factory, wid).status is Status.NEW and row(factory, wid).kind is Kind.MAILING_ACTIVITY


def test_retry_available_leaves_discarded_rows_out_unless_the_filter_asks_for_them(factory: Factory) -> None:
    kept, dropped = enqueue(factory, item(), item(email="bo@example.org"))
    for wid in (kept, dropped):
        run(factory, T0)
        fail(factory, wid, T0 + timedelta(seconds=1))
    discard(factory, [dropped])
    with factory() as session:
        everything = listing.WritebackFilter(retry_available=True)
        asked = listing.WritebackFilter(statuses=frozenset({Status.DISCARDED}), retry_available=True)
        assert listing.count_matching(session, everything) == 0  # the Error one has retries left
        assert [r.id for r in listing.iter_rows(session, asked)] == [dropped]
