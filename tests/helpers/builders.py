"""Small builders for queue tests: writebacks, mailings and dispatcher runs with explicit clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from writeback_console.domain import Kind
from writeback_console.intake import WritebackInput
from writeback_console.store import lifecycle, listing, recording
from writeback_console.store.engine import write_transaction
from writeback_console.store.models import Mailing, MailingRecipient
from writeback_console.store.rows import W, WritebackRow

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DISPATCHER = "test-host:1"


#: A failed row's automatic retry is due this long after its failure, as for a dispatcher whose interval
#: is a minute (the tests' runs are ten minutes apart unless a test says otherwise).
RETRY_AFTER = timedelta(minutes=1)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def item(kind: Kind = Kind.UNSUBSCRIBE, email: str = "ann@example.org", **extra: Any) -> WritebackInput:
    values: dict[str, Any] = {"kind": kind, "account": "Main", "occurred_at": T0, "email": email}
    if kind is Kind.MAILING_ACTIVITY:
        values["email"] = None
    values.update(extra)
    return WritebackInput(**values)


def enqueue(factory: sessionmaker[Session], *items: WritebackInput, now: datetime = T0) -> list[int]:
    with write_transaction(factory) as session:
        return [lifecycle.enqueue(session, i, now=now).id for i in items]


def add_mailing(
    factory: sessionmaker[Session], *, remote: int, unknown: int = 0, name: str = "Weekly Update"
) -> int:
    """A mailing with ``remote`` recipients known in Personify360 and ``unknown`` who are not."""
    with write_transaction(factory) as session:
        mailing_id = session.execute(
            insert(Mailing).values(account="Main", name=name, sent_at=T0, created_at=T0).returning(Mailing.id)
        ).scalar_one()
        rows = [
            {
                "mailing_id": mailing_id,
                "email": f"r{n}@example.org",
                "master_customer_id": f"{n:012d}" if n < remote else None,
                "sub_customer_id": 0 if n < remote else None,
                "sent_at": T0,
                "clicks": [],
                "blocked": False,
            }
            for n in range(remote + unknown)
        ]
        if rows:
            session.execute(insert(MailingRecipient), rows)
    return int(mailing_id)


def run(
    factory: sessionmaker[Session], started: datetime, *, limit: int = 1000, dispatcher: str = DISPATCHER
) -> list[lifecycle.Claimed]:
    """Claim like one dispatcher run that started at ``started``."""
    with write_transaction(factory) as session:
        return lifecycle.claim(
            session, dispatcher=dispatcher, run_started_at=started, now=started, limit=limit
        )


def token_of(session: Session, writeback_id: int) -> int:
    """The fencing token of the row's current lease (tests act as its holder)."""
    return int(session.execute(select(W.lease_token).where(W.id == writeback_id)).scalar_one())


def fail(
    factory: sessionmaker[Session],
    writeback_id: int,
    at: datetime,
    message: str = "HTTP 500",
    retry_after: timedelta = RETRY_AFTER,
) -> None:
    with write_transaction(factory) as session:
        assert recording.mark_error(
            session,
            writeback_id,
            token=token_of(session, writeback_id),
            dispatcher=DISPATCHER,
            failed_at=at,
            message=message,
            http_status=500,
            response_excerpt="<error><message>boom</message></error>",
            retry_after=retry_after,
        )


def send(factory: sessionmaker[Session], writeback_id: int, at: datetime) -> None:
    with write_transaction(factory) as session:
        assert recording.mark_sent(
            session,
            writeback_id,
            token=token_of(session, writeback_id),
            dispatcher=DISPATCHER,
            sent_at=at,
            http_status=201,
        )


def row(factory: sessionmaker[Session], writeback_id: int) -> WritebackRow:
    with factory() as session:
        return listing.get_writeback(session, writeback_id)


def fail_runs(factory: sessionmaker[Session], writeback_id: int, runs: int, start: datetime = T0) -> datetime:
    """Let the row fail in ``runs`` consecutive ten-minute runs; returns when the last run started."""
    at = start
    for n in range(runs):
        at = start + minutes(10 * n)
        claimed = run(factory, at)
        assert [c.id for c in claimed] == [writeback_id]
        fail(factory, writeback_id, at + timedelta(seconds=5), f"failure {n + 1}")
    return at
