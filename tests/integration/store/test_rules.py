"""Every status rule (docs/architecture.md) at the queue level, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import (
    DISPATCHER,
    T0,
    add_mailing,
    enqueue,
    fail,
    fail_runs,
    item,
    minutes,
    row,
    run,
    send,
)
from writeback_console.domain import Kind, Status, mailing_activity_outcome
from writeback_console.store import audit_trail, lifecycle, listing, operator_actions, recording
from writeback_console.store.engine import write_transaction
from writeback_console.store.rows import QueueError, RetryRefused

Factory = sessionmaker[Session]


def test_new_writeback_is_claimed_by_the_next_run_and_marked_processing(factory: Factory) -> None:
    (wid,) = enqueue(factory, item())
    assert row(factory, wid).status is Status.NEW

    claimed = run(factory, T0 + minutes(10))

    assert [c.id for c in claimed] == [wid]
    r = row(factory, wid)
    assert r.status is Status.PROCESSING
    assert r.locked_by == DISPATCHER and r.locked_at == T0 + minutes(10)
    assert r.attempts == 1


def test_sent_writeback_records_the_date_and_time_it_was_accepted(factory: Factory) -> None:
    (wid,) = enqueue(factory, item())
    run(factory, T0)
    accepted = T0 + timedelta(seconds=3, microseconds=123456)

    send(factory, wid, accepted)

    r = row(factory, wid)
    assert r.status is Status.SENT
    assert r.sent_at == accepted
    assert r.locked_by is None
    assert run(factory, T0 + minutes(10)) == []


def test_failure_for_any_reason_becomes_error_with_its_details(factory: Factory) -> None:
    (wid,) = enqueue(factory, item())
    run(factory, T0)
    fail(factory, wid, T0 + timedelta(seconds=2), "Validation issues: Customer does not exist")

    r = row(factory, wid)
    assert r.status is Status.ERROR
    assert r.last_error == "Validation issues: Customer does not exist"
    assert r.last_http_status == 500
    with factory() as session:
        (attempt,) = listing.attempts_of(session, wid)
    assert attempt.outcome == "error" and attempt.http_status == 500
    assert attempt.finished_at == T0 + timedelta(seconds=2)
    assert attempt.response_excerpt == "<error><message>boom</message></error>"


def test_row_that_fails_in_a_run_is_not_retried_in_the_same_run(factory: Factory) -> None:
    (wid,) = enqueue(factory, item())
    run(factory, T0)
    fail(factory, wid, T0 + timedelta(seconds=1))

    # The same run claims again (next batch): the row must not come back.
    assert run(factory, T0) == []


def test_failed_row_is_retried_automatically_in_a_later_run(factory: Factory) -> None:
    (wid,) = enqueue(factory, item())
    run(factory, T0)
    fail(factory, wid, T0 + timedelta(seconds=1))

    claimed = run(factory, T0 + minutes(10))

    assert [c.id for c in claimed] == [wid]
    assert claimed[0].attempt == 2


def test_three_attempts_in_all_then_no_more_automatic_retries(factory: Factory) -> None:
    (wid,) = enqueue(factory, item())
    last_run = fail_runs(factory, wid, 3)

    assert run(factory, last_run + minutes(10)) == []
    assert run(factory, last_run + timedelta(days=30)) == []
    r = row(factory, wid)
    assert (r.status, r.attempts, r.max_attempts) == (Status.ERROR, 3, 3)
    with factory() as session:
        assert [a.number for a in listing.attempts_of(session, wid)] == [1, 2, 3]


@pytest.mark.parametrize("failures", [1, 2])
def test_manual_retry_is_not_offered_while_automatic_retries_remain(factory: Factory, failures: int) -> None:
    (wid,) = enqueue(factory, item())
    fail_runs(factory, wid, failures)

    with write_transaction(factory) as session, pytest.raises(RetryRefused) as refused:
        operator_actions.manual_retry(session, [wid], actor="advisor@desk")

    left = 3 - failures
    assert f"{left} automatic" in str(refused.value)
    r = row(factory, wid)
    assert (r.status, r.max_attempts) == (Status.ERROR, 3)
    with factory() as session:
        assert audit_trail.audit_of(session, wid) == []


def test_manual_retry_is_refused_for_rows_that_are_not_in_error(factory: Factory) -> None:
    new_id, sent_id = enqueue(factory, item(), item(email="bo@example.org"))
    run(factory, T0)
    send(factory, sent_id, T0 + timedelta(seconds=1))
    fail(factory, new_id, T0 + timedelta(seconds=1))

    with write_transaction(factory) as session, pytest.raises(RetryRefused) as refused:
        operator_actions.manual_retry(session, [sent_id], actor="advisor@desk")
    assert "status is Sent" in str(refused.value)


def test_manual_retry_grants_exactly_one_more_attempt(factory: Factory) -> None:
    (wid,) = enqueue(factory, item())
    last_run = fail_runs(factory, wid, 3)

    with write_transaction(factory) as session:
        result = operator_actions.manual_retry(
            session, [wid], actor="advisor@desk", now=last_run + minutes(1)
        )
    assert [i for i, _ in result.retried] == [wid]
    r = row(factory, wid)
    assert (r.status, r.attempts, r.max_attempts) == (Status.NEW, 3, 4)

    claimed = run(factory, last_run + minutes(10))
    assert [(c.id, c.attempt) for c in claimed] == [(wid, 4)]
    fail(factory, wid, last_run + minutes(10) + timedelta(seconds=1))
    # The granted attempt is used up: nothing automatic follows it.
    assert run(factory, last_run + minutes(20)) == []
    with factory() as session:
        decision_row = listing.get_writeback(session, wid)
    assert decision_row.attempts == decision_row.max_attempts == 4


def test_manual_retry_keeps_the_full_error_history(factory: Factory) -> None:
    (wid,) = enqueue(factory, item())
    last_run = fail_runs(factory, wid, 3)
    with write_transaction(factory) as session:
        operator_actions.manual_retry(session, [wid], actor="advisor@desk", now=last_run + minutes(1))
    run(factory, last_run + minutes(10))
    send(factory, wid, last_run + minutes(10) + timedelta(seconds=1))

    with factory() as session:
        history = listing.attempts_of(session, wid)
        audit = audit_trail.audit_of(session, wid)
    assert [(a.number, a.outcome) for a in history] == [
        (1, "error"),
        (2, "error"),
        (3, "error"),
        (4, "sent"),
    ]
    assert [a.message for a in history[:3]] == ["failure 1", "failure 2", "failure 3"]
    assert history[3].manual is True
    assert [(e.action, e.actor) for e in audit] == [("retry", "advisor@desk")]


def test_manual_retry_of_many_refuses_all_when_one_is_not_eligible(factory: Factory) -> None:
    (done_id,) = enqueue(factory, item())
    last_run = fail_runs(factory, done_id, 3)
    (young_id,) = enqueue(factory, item(email="bo@example.org"))
    run(factory, last_run + minutes(10))
    fail(factory, young_id, last_run + minutes(11))

    with write_transaction(factory) as session, pytest.raises(RetryRefused):
        operator_actions.manual_retry(session, [done_id, young_id], actor="advisor@desk")
    assert row(factory, done_id).status is Status.ERROR

    with write_transaction(factory) as session:
        result = operator_actions.manual_retry(
            session, [done_id, young_id], actor="advisor@desk", skip_ineligible=True
        )
    assert [i for i, _ in result.retried] == [done_id]
    assert [r.id for r in result.skipped] == [young_id]


def test_scheduled_mailing_activity_waits_until_its_time_then_goes_out(factory: Factory) -> None:
    mailing = add_mailing(factory, remote=3)
    due = T0 + timedelta(hours=2)
    with write_transaction(factory) as session:
        wid = operator_actions.schedule_mailing_activity(
            session, mailing, at=due, actor="staff@desk", now=T0
        ).id
    assert row(factory, wid).status is Status.SCHEDULED
    assert row(factory, wid).scheduled_for == due

    assert run(factory, due - minutes(1)) == []
    claimed = run(factory, due)
    assert [c.id for c in claimed] == [wid]
    send(factory, wid, due + minutes(1))
    assert row(factory, wid).status is Status.SENT


def test_scheduling_in_the_past_is_refused(factory: Factory) -> None:
    mailing = add_mailing(factory, remote=1)
    with write_transaction(factory) as session, pytest.raises(QueueError, match="already passed"):
        operator_actions.schedule_mailing_activity(
            session, mailing, at=T0 - minutes(1), actor="staff", now=T0
        )


def test_staff_can_send_now_reschedule_or_cancel_scheduled_mailing_activity(factory: Factory) -> None:
    first, second = add_mailing(factory, remote=2), add_mailing(factory, remote=2, name="Renewal")
    with write_transaction(factory) as session:
        a = operator_actions.schedule_mailing_activity(
            session, first, at=T0 + minutes(60), actor="staff", now=T0
        )
        b = operator_actions.schedule_mailing_activity(
            session, second, at=T0 + minutes(60), actor="staff", now=T0
        )
    with write_transaction(factory) as session:
        moved = operator_actions.reschedule(session, a.id, at=T0 + minutes(120), actor="staff", now=T0)
    assert moved.scheduled_for == T0 + minutes(120)
    with write_transaction(factory) as session:
        now_row = operator_actions.reschedule(session, a.id, at=None, actor="staff", now=T0)
    assert now_row.status is Status.NEW
    with write_transaction(factory) as session:
        operator_actions.cancel_scheduled(session, b.id, actor="staff", now=T0)

    with factory() as session:
        # Cancelled is a recorded state: the row stays, with its reference and its history.
        cancelled = listing.get_writeback(session, b.id)
        actions = [e.action for e in audit_trail.audit_of(session, a.id)]
        cancel = audit_trail.audit_of(session, b.id)
    assert (cancelled.status, cancelled.ref) == (Status.CANCELLED, b.ref)
    assert actions == ["schedule", "reschedule", "reschedule"]
    assert [e.action for e in cancel] == ["schedule", "cancel"]
    assert cancel[-1].detail is not None and cancel[-1].detail["mailing_id"] == second
    assert [c.id for c in run(factory, T0 + minutes(1))] == [a.id]


def test_second_mailing_activity_for_the_same_mailing_is_refused(factory: Factory) -> None:
    mailing = add_mailing(factory, remote=1)
    with write_transaction(factory) as session:
        first = operator_actions.schedule_mailing_activity(session, mailing, at=None, actor="staff", now=T0)
    with write_transaction(factory) as session, pytest.raises(QueueError, match=first.ref):
        operator_actions.schedule_mailing_activity(session, mailing, at=None, actor="staff", now=T0)


def test_mailing_without_remote_recipients_ends_as_no_remote_recipients(factory: Factory) -> None:
    mailing = add_mailing(factory, remote=0, unknown=5)
    with write_transaction(factory) as session:
        wid = operator_actions.schedule_mailing_activity(session, mailing, at=None, actor="staff", now=T0).id
    with factory() as session:
        total, remote = listing.mailing_recipient_counts(session, mailing)
    assert (total, remote) == (5, 0)
    outcome = mailing_activity_outcome(remote, delivered=0)
    assert outcome is Status.NO_REMOTE_RECIPIENTS

    (claimed,) = run(factory, T0 + minutes(10))
    with write_transaction(factory) as session:
        assert recording.mark_no_remote_recipients(session, wid, token=claimed.token, now=T0 + minutes(10))

    r = row(factory, wid)
    assert r.status is Status.NO_REMOTE_RECIPIENTS and r.last_error is None
    # Final and not an error: never claimed again, never offered for retry.
    assert run(factory, T0 + timedelta(days=1)) == []
    with write_transaction(factory) as session, pytest.raises(RetryRefused):
        operator_actions.manual_retry(session, [wid], actor="advisor")


def test_processing_row_of_a_dead_dispatcher_is_recovered_and_sent_in_the_next_run(factory: Factory) -> None:
    (wid,) = enqueue(factory, item())
    run(factory, T0)  # the dispatcher dies here, holding the row
    next_run = T0 + minutes(20)

    with write_transaction(factory) as session:
        # Its lease (15 minutes, the holder's) has not run out yet.
        assert recording.recover_expired_leases(session, now=T0 + minutes(5)) == []
        recovered = recording.recover_expired_leases(session, now=next_run)
    assert recovered == [wid]
    r = row(factory, wid)
    # Back where it was; the first interruption does not use up one of its three attempts.
    assert (r.status, r.attempts) == (Status.NEW, 0)
    assert r.delivery_uncertain and "lease ran out" in (r.last_error or "")

    claimed = run(factory, next_run)
    assert [(c.id, c.attempt, c.delivery_uncertain) for c in claimed] == [(wid, 1, True)]
    with factory() as session:
        history = listing.attempts_of(session, wid)
    assert [(a.number, a.outcome) for a in history] == [(1, "interrupted"), (2, None)]


def test_failed_row_recovered_from_a_dead_dispatcher_keeps_its_earlier_attempts(factory: Factory) -> None:
    (wid,) = enqueue(factory, item())
    last = fail_runs(factory, wid, 2)
    run(factory, last + minutes(10))  # third attempt; the dispatcher dies
    with write_transaction(factory) as session:
        recording.recover_expired_leases(session, now=last + minutes(40))
    r = row(factory, wid)
    assert (r.status, r.attempts) == (Status.ERROR, 2)
    assert [c.attempt for c in run(factory, last + minutes(40))] == [3]


def test_claim_released_unsent_counts_no_attempt(factory: Factory) -> None:
    new_id, err_id = enqueue(factory, item(), item(email="bo@example.org"))
    run(factory, T0, limit=1)
    fail(factory, new_id, T0 + timedelta(seconds=1))
    claimed = run(factory, T0 + minutes(10))  # claims both: the error row (attempt 2) and the new one

    with write_transaction(factory) as session:
        assert recording.release(session, {c.id: c.token for c in claimed}) == 2

    first, second = row(factory, new_id), row(factory, err_id)
    assert (first.status, first.attempts) == (Status.ERROR, 1)
    assert (second.status, second.attempts) == (Status.NEW, 0)
    with factory() as session:
        assert [a.number for a in listing.attempts_of(session, new_id)] == [1]
        assert listing.attempts_of(session, err_id) == []


def test_lost_lease_cannot_mark_the_row(factory: Factory) -> None:
    (wid,) = enqueue(factory, item())
    (claimed,) = run(factory, T0)
    with write_transaction(factory) as session:
        recording.recover_expired_leases(session, now=T0 + minutes(30))
        assert not recording.mark_sent(
            session, wid, token=claimed.token, dispatcher=DISPATCHER, sent_at=T0 + minutes(31)
        )
    r = row(factory, wid)
    assert (r.status, r.sent_at) == (Status.NEW, None)


def test_accounts_with_writeback_switched_off_are_not_claimed(factory: Factory) -> None:
    main_id, other_id = enqueue(factory, item(), item(account="Foundation"))
    with write_transaction(factory) as session:
        claimed = lifecycle.claim(
            session, dispatcher=DISPATCHER, run_started_at=T0, now=T0, limit=10, skip_accounts=["Foundation"]
        )
    assert [c.id for c in claimed] == [main_id]
    assert row(factory, other_id).status is Status.NEW


def test_every_writeback_gets_a_unique_searchable_reference(factory: Factory) -> None:
    ids = enqueue(factory, *(item(email=f"p{n}@example.org") for n in range(50)))
    with factory() as session:
        refs = [listing.get_writeback(session, i).ref for i in ids]
        assert len(set(refs)) == 50
        assert all(r.startswith("WB-") and 6 <= len(r) - 3 <= 12 and r.upper() == r for r in refs)
        assert listing.get_writeback(session, refs[7].lower()).id == ids[7]


def test_mailing_activity_kind_is_the_only_one_scheduled(factory: Factory) -> None:
    (wid,) = enqueue(factory, item(Kind.RESUBSCRIBE))
    with (
        write_transaction(factory) as session,
        pytest.raises(QueueError, match="only Mailing Activity"),
    ):
        operator_actions.reschedule(session, wid, at=T0 + minutes(60), actor="staff", now=T0)
