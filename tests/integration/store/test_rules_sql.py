"""The rules run twice: as plain functions in domain.py and as SQL where the rows are. For each rule a
property test proves, over generated rows, that the SQL does exactly what the function says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session, sessionmaker

from writeback_console.domain import (
    QueueState,
    Status,
    after_failure,
    after_manual_retry,
    is_eligible,
    manual_retry_decision,
    retries_exhausted,
)
from writeback_console.store import lifecycle, listing, operator_actions, recording
from writeback_console.store.engine import write_transaction
from writeback_console.store.models import Attempt, AuditEvent, AuditEventRow, Writeback

RUN = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
RETRY_AFTER = timedelta(minutes=10)
offsets = st.one_of(st.none(), st.integers(-3, 3).map(lambda s: RUN + timedelta(seconds=s)))


@st.composite
def states(draw: st.DrawFn) -> QueueState:
    status = draw(st.sampled_from(list(Status)))
    max_attempts = draw(st.integers(1, 5))
    # A waiting row always has an attempt left: the schema enforces it.
    waiting = status in (Status.NEW, Status.SCHEDULED)
    attempts = draw(st.integers(0, max_attempts - 1 if waiting else max_attempts))
    scheduled = draw(offsets)
    if status is Status.SCHEDULED and scheduled is None:
        scheduled = RUN
    uncertain_since = draw(offsets) if draw(st.booleans()) else None
    return QueueState(status, attempts, max_attempts, scheduled, draw(offsets), uncertain_since)


def _insert(session: Session, rows: list[QueueState]) -> list[int]:
    ids = []
    for n, s in enumerate(rows):
        ids.append(
            session.execute(
                insert(Writeback)
                .values(
                    ref=f"WB-PROP{n:04d}",
                    kind="unsubscribe",
                    account="Main",
                    email="a@b.org",
                    payload={},
                    occurred_at=RUN,
                    status=s.status.value,
                    attempts=s.attempts,
                    max_attempts=s.max_attempts,
                    scheduled_for=s.scheduled_for,
                    next_attempt_at=s.next_attempt_at,
                    sent_at=RUN if s.status is Status.SENT else None,
                    lease_expires_at=RUN if s.status is Status.PROCESSING else None,
                    delivery_uncertain=s.uncertain_since is not None,
                    uncertain_since=s.uncertain_since,
                    created_at=RUN,
                    updated_at=RUN,
                )
                .returning(Writeback.id)
            ).scalar_one()
        )
    return ids


def _states_of(session: Session, ids: list[int]) -> list[QueueState]:
    found = {
        r.id: QueueState(
            Status(r.status),
            r.attempts,
            r.max_attempts,
            r.scheduled_for,
            r.next_attempt_at,
            r.uncertain_since,
        )
        for r in session.execute(select(Writeback).where(Writeback.id.in_(ids))).scalars()
    }
    return [found[i] for i in ids]


def _clear(session: Session) -> None:
    session.execute(delete(AuditEventRow))
    session.execute(delete(AuditEvent))
    session.execute(delete(Attempt))
    session.execute(delete(Writeback))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(states(), min_size=1, max_size=12), settle=st.sampled_from([0, 1, 2]))
def test_sql_claim_takes_exactly_the_rows_the_rule_calls_eligible(
    factory: sessionmaker[Session], rows: list[QueueState], settle: int
) -> None:
    with write_transaction(factory) as session:
        _clear(session)
        ids = _insert(session, rows)
        claimed = lifecycle.claim(
            session, dispatcher="prop:1", run_started_at=RUN, now=RUN, limit=100, settle_seconds=settle
        )
        session.rollback()
    expected = {i for i, s in zip(ids, rows, strict=True) if is_eligible(s, RUN, timedelta(seconds=settle))}
    assert {c.id for c in claimed} == expected


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(states(), min_size=1, max_size=12))
def test_a_recorded_failure_leaves_what_after_failure_says(
    factory: sessionmaker[Session], rows: list[QueueState]
) -> None:
    failed_at = RUN + timedelta(seconds=5)
    with write_transaction(factory) as session:
        _clear(session)
        ids = _insert(session, rows)
        claimed = lifecycle.claim(session, dispatcher="prop:1", run_started_at=RUN, now=RUN, limit=100)
        mine = [c.id for c in claimed]
        before = _states_of(session, mine)
        results = [
            recording.AttemptResult(c.id, c.token, ok=False, at=failed_at, message="x") for c in claimed
        ]
        recording.record_results(session, results, dispatcher="prop:1", retry_after=RETRY_AFTER)
        after = _states_of(session, mine)
        session.rollback()
    assert set(mine) <= set(ids)
    assert after == [after_failure(state, failed_at, RETRY_AFTER) for state in before]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(states(), min_size=1, max_size=12))
def test_a_manual_retry_grants_what_the_rule_allows_and_leaves_what_after_manual_retry_says(
    factory: sessionmaker[Session], rows: list[QueueState]
) -> None:
    with write_transaction(factory) as session:
        _clear(session)
        ids = _insert(session, rows)
        result = operator_actions.manual_retry(session, ids, actor="prop", now=RUN, skip_ineligible=True)
        after = _states_of(session, ids)
        session.rollback()
    allowed = [manual_retry_decision(s).allowed for s in rows]
    assert {i for i, _ in result.retried} == {i for i, ok in zip(ids, allowed, strict=True) if ok}
    assert after == [after_manual_retry(s) if ok else s for s, ok in zip(rows, allowed, strict=True)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(states(), min_size=1, max_size=12))
def test_the_retry_available_filter_finds_exactly_the_rows_whose_retries_are_exhausted(
    factory: sessionmaker[Session], rows: list[QueueState]
) -> None:
    with write_transaction(factory) as session:
        _clear(session)
        ids = _insert(session, rows)
        found = {r.id for r in listing.iter_rows(session, listing.WritebackFilter(retry_available=True))}
        session.rollback()
    assert found == {i for i, s in zip(ids, rows, strict=True) if retries_exhausted(s)}
