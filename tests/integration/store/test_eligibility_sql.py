"""The claim statement's SQL and the domain's eligibility rule agree on every kind of row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert
from sqlalchemy.orm import Session, sessionmaker

from writeback_console.domain import QueueState, Status, is_eligible
from writeback_console.store import lifecycle
from writeback_console.store.engine import write_transaction
from writeback_console.store.models import Attempt, Writeback

RUN = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
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


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(states(), min_size=1, max_size=12), settle=st.sampled_from([0, 1, 2]))
def test_sql_claim_takes_exactly_the_rows_the_rule_calls_eligible(
    factory: sessionmaker[Session], rows: list[QueueState], settle: int
) -> None:
    with write_transaction(factory) as session:
        session.execute(delete(Attempt))
        session.execute(delete(Writeback))
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
        claimed = lifecycle.claim(
            session, dispatcher="prop:1", run_started_at=RUN, now=RUN, limit=100, settle_seconds=settle
        )
        session.rollback()
    expected = {i for i, s in zip(ids, rows, strict=True) if is_eligible(s, RUN, timedelta(seconds=settle))}
    assert {c.id for c in claimed} == expected
