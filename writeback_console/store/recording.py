"""How a claim ends: results recorded on the rows still held, rows released or put back, expired leases
recovered. Every attempt that was started is closed here, with its outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from writeback_console.domain import FREE_INTERRUPTIONS, AttemptOutcome, DeliveryStatus, Kind, Status
from writeback_console.store.lifecycle import Leases, database_now, fenced, held_leases, pair_chunks
from writeback_console.store.models import Attempt, Delivery, Writeback
from writeback_console.store.rows import (
    ATTEMPT_TABLE,
    EXCERPT_LIMIT,
    MESSAGE_LIMIT,
    WRITEBACK_TABLE,
    W,
    chunks,
    cut,
    rows_changed,
)


def _finish_attempt(
    session: Session,
    writeback_id: int,
    *,
    outcome: AttemptOutcome,
    now: datetime,
    http_status: int | None = None,
    message: str | None = None,
    response_excerpt: str | None = None,
    counted: bool = True,
) -> None:
    session.execute(
        update(Attempt)
        .where(Attempt.writeback_id == writeback_id, Attempt.outcome.is_(None))
        .values(
            outcome=AttemptOutcome(outcome).value,
            finished_at=now,
            http_status=http_status,
            message=cut(message, MESSAGE_LIMIT),
            response_excerpt=cut(response_excerpt, EXCERPT_LIMIT),
            counted=counted,
        )
    )


#: For a result that cannot fail (a success), where no retry is ever due.
_ANY = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """How one attempt ended, for :func:`record_results`."""

    writeback_id: int
    token: int
    ok: bool
    at: datetime
    http_status: int | None = None
    message: str | None = None
    response_excerpt: str | None = None
    #: A failed write that may still have reached Personify360 (timeout, dropped connection).
    may_have_arrived: bool = False
    #: Personify360 was asked and an earlier uncertain write is known not to be there.
    checked_absent: bool = False


#: What every end of a claim writes: no lease, nothing to restore, and the holder as the one who made the
#: change (SET sees the row as it was, so this is the holder that is letting go).
UNLOCKED: dict[str, Any] = {
    "locked_by": None,
    "locked_at": None,
    "lease_expires_at": None,
    "claimed_from": None,
    "changed_by": WRITEBACK_TABLE.c.locked_by,
}


@dataclass(frozen=True, slots=True)
class _Closed:
    """How an open attempt ends, for :func:`_close_attempts`."""

    writeback_id: int
    outcome: AttemptOutcome
    at: datetime
    http_status: int | None
    message: str | None
    response_excerpt: str | None


def _close_attempts(
    conn: Any, closed: Sequence[_Closed], *, counted: bool, dispatcher: str | None = None
) -> None:
    """Close the open attempt of each row (of this dispatcher's, if named) in one statement."""
    condition = and_(ATTEMPT_TABLE.c.writeback_id == bindparam("wid"), ATTEMPT_TABLE.c.outcome.is_(None))
    if dispatcher is not None:
        condition = and_(condition, ATTEMPT_TABLE.c.dispatcher == dispatcher)
    conn.execute(
        update(ATTEMPT_TABLE)
        .where(condition)
        .values(
            outcome=bindparam("outcome"),
            finished_at=bindparam("at"),
            http_status=bindparam("http"),
            message=bindparam("message"),
            response_excerpt=bindparam("excerpt"),
            counted=counted,
        ),
        [
            {
                "wid": c.writeback_id,
                "outcome": AttemptOutcome(c.outcome).value,
                "at": c.at,
                "http": c.http_status,
                "message": cut(c.message, MESSAGE_LIMIT),
                "excerpt": cut(c.response_excerpt, EXCERPT_LIMIT),
            }
            for c in closed
        ],
    )


def record_results(
    session: Session,
    results: Sequence[AttemptResult],
    *,
    dispatcher: str,
    retry_after: timedelta,
    any_holder: bool = False,
) -> set[int]:
    """Record many attempts in a few statements; returns the ids whose lease the caller still held.

    A failed row's automatic retry is due ``retry_after`` (the dispatcher's interval) after its failure,
    as ``domain.after_failure`` says. The attempt closed is the dispatcher's own, or with ``any_holder``
    the row's open one whoever claimed it (a mailing settled by whichever of its dispatchers finished last).

    A row whose lease was lost meanwhile (recovered by another run, or the holder slept past it) is
    left alone: its fencing token no longer matches, its attempt was closed as interrupted, and it is
    checked by reference before it is sent again.
    """
    if retry_after <= timedelta(0):
        raise ValueError("retry_after: must be positive, or a row could be retried in the run it failed in")
    if not results:
        return set()
    held = held_leases(session, {r.writeback_id: r.token for r in results})
    mine = [r for r in results if r.writeback_id in held]
    sent = [r for r in mine if r.ok]
    failed = [r for r in mine if not r.ok]
    conn = session.connection()
    if sent:
        conn.execute(
            update(WRITEBACK_TABLE)
            .where(WRITEBACK_TABLE.c.id == bindparam("wid"))
            .values(
                status=Status.SENT.value,
                sent_at=bindparam("at"),
                **UNLOCKED,
                delivery_uncertain=False,
                uncertain_since=None,
                interruptions=0,
                last_error=None,
                last_http_status=bindparam("http"),
                updated_at=bindparam("at"),
            ),
            [{"wid": r.writeback_id, "at": r.at, "http": r.http_status} for r in sent],
        )
    if failed:
        conn.execute(
            update(WRITEBACK_TABLE)
            .where(WRITEBACK_TABLE.c.id == bindparam("wid"))
            .values(
                status=Status.ERROR.value,
                next_attempt_at=bindparam("due"),
                **UNLOCKED,
                interruptions=0,
                # Knowing the earlier write is absent settles the doubt; a new doubt adds to it.
                delivery_uncertain=or_(
                    and_(WRITEBACK_TABLE.c.delivery_uncertain, bindparam("keep", type_=Boolean)),
                    bindparam("mha", type_=Boolean),
                ),
                uncertain_since=case(
                    (bindparam("mha", type_=Boolean), bindparam("at")),
                    (bindparam("keep", type_=Boolean), WRITEBACK_TABLE.c.uncertain_since),
                    else_=None,
                ),
                last_error=bindparam("message"),
                last_http_status=bindparam("http"),
                updated_at=bindparam("at"),
            ),
            [
                {
                    "wid": r.writeback_id,
                    "at": r.at,
                    "due": r.at + retry_after,
                    "keep": not r.checked_absent,
                    "mha": r.may_have_arrived,
                    "message": cut(r.message, MESSAGE_LIMIT),
                    "http": r.http_status,
                }
                for r in failed
            ],
        )
    if mine:
        _close_attempts(
            conn,
            [
                _Closed(
                    r.writeback_id,
                    AttemptOutcome.SENT if r.ok else AttemptOutcome.ERROR,
                    r.at,
                    r.http_status,
                    r.message,
                    r.response_excerpt,
                )
                for r in mine
            ],
            counted=True,
            dispatcher=None if any_holder else dispatcher,
        )
    return held


def mark_sent(
    session: Session,
    writeback_id: int,
    *,
    token: int,
    dispatcher: str,
    sent_at: datetime,
    http_status: int | None = None,
    message: str | None = None,
    any_holder: bool = False,
) -> bool:
    """Record that Personify360 accepted the row. False if this lease is no longer held."""
    result = AttemptResult(writeback_id, token, True, sent_at, http_status, message)
    return writeback_id in record_results(
        session, [result], dispatcher=dispatcher, retry_after=_ANY, any_holder=any_holder
    )


def mark_error(
    session: Session,
    writeback_id: int,
    *,
    token: int,
    dispatcher: str,
    failed_at: datetime,
    message: str,
    http_status: int | None = None,
    response_excerpt: str | None = None,
    may_have_arrived: bool = False,
    retry_after: timedelta,
    any_holder: bool = False,
) -> bool:
    """Record a failed attempt; the row is retried automatically, ``retry_after`` later, while attempts
    remain."""
    result = AttemptResult(
        writeback_id, token, False, failed_at, http_status, message, response_excerpt, may_have_arrived
    )
    return writeback_id in record_results(
        session, [result], dispatcher=dispatcher, retry_after=retry_after, any_holder=any_holder
    )


def mark_no_remote_recipients(session: Session, writeback_id: int, *, token: int, now: datetime) -> bool:
    """A mailing activity whose mailing reached nobody known to Personify360: final, not an error."""
    done = rows_changed(
        session.execute(
            update(Writeback)
            .where(fenced([(writeback_id, token)]), W.kind == Kind.MAILING_ACTIVITY.value)
            .values(
                status=Status.NO_REMOTE_RECIPIENTS.value,
                **UNLOCKED,
                interruptions=0,
                last_error=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    )
    if done:
        _finish_attempt(
            session,
            writeback_id,
            outcome=AttemptOutcome.NO_REMOTE_RECIPIENTS,
            now=now,
            message="the mailing has no recipient that exists in Personify360",
        )
    return bool(done)


def release(session: Session, leases: Leases, *, now: datetime | None = None) -> int:
    """Put claimed rows that were never sent back exactly as they were; no attempt is counted."""
    now = now or database_now(session)
    released = 0
    for batch in pair_chunks(leases):
        rows = (
            session.execute(
                update(Writeback)
                .where(fenced(batch))
                .values(status=W.claimed_from, attempts=W.attempts - 1, updated_at=now, **UNLOCKED)
                .returning(W.id)
                .execution_options(synchronize_session=False)
            )
            .scalars()
            .all()
        )
        if rows:
            session.execute(delete(Attempt).where(Attempt.writeback_id.in_(rows), Attempt.outcome.is_(None)))
        released += len(rows)
    return released


@dataclass(frozen=True, slots=True)
class PutBack:
    """A claimed row that was tried but whose attempt must not count, for :func:`put_back`."""

    writeback_id: int
    token: int
    at: datetime
    #: outage (Personify360 as a whole unavailable) or stopped (the run stopped part-way through it).
    outcome: AttemptOutcome
    message: str
    http_status: int | None = None
    response_excerpt: str | None = None
    #: A write went out and its fate is unknown: the next send asks Personify360 first.
    may_have_arrived: bool = False


def put_back(session: Session, items: Sequence[PutBack]) -> set[int]:
    """Put rows back where they were without using an attempt, keeping the attempt in the history.

    Used when Personify360 as a whole was unavailable, or a run stopped part-way through a row: the
    doubt whether a write arrived is kept, so the next send looks for the reference first.
    """
    if not items:
        return set()
    by_id = {i.writeback_id: i for i in items}
    held = held_leases(session, {i.writeback_id: i.token for i in items})
    mine = [by_id[wid] for wid in sorted(held)]
    if not mine:
        return held
    conn = session.connection()
    conn.execute(
        update(WRITEBACK_TABLE)
        .where(WRITEBACK_TABLE.c.id == bindparam("wid"))
        .values(
            status=WRITEBACK_TABLE.c.claimed_from,
            attempts=WRITEBACK_TABLE.c.attempts - 1,
            **UNLOCKED,
            delivery_uncertain=or_(WRITEBACK_TABLE.c.delivery_uncertain, bindparam("mha", type_=Boolean)),
            # A write that may have arrived starts the wait before it is looked for.
            uncertain_since=case(
                (bindparam("mha", type_=Boolean), bindparam("at")), else_=WRITEBACK_TABLE.c.uncertain_since
            ),
            updated_at=bindparam("at"),
        ),
        [{"wid": i.writeback_id, "mha": i.may_have_arrived, "at": i.at} for i in mine],
    )
    _close_attempts(
        conn,
        [
            _Closed(i.writeback_id, i.outcome, i.at, i.http_status, i.message, i.response_excerpt)
            for i in mine
        ],
        counted=False,
    )
    return held


LEASE_LOST_MESSAGE = (
    "the dispatcher {holder} stopped while sending (its lease ran out); this first interruption uses no "
    "attempt, and Personify360 is asked whether the activity arrived before it is sent again"
)


LEASE_LOST_AGAIN_MESSAGE = (
    "the dispatcher {holder} stopped while sending, the second time in a row for this writeback; "
    "from now on each such interruption uses an attempt, and Personify360 is asked whether the "
    "activity arrived before it is sent again"
)


def _holder_message(template: str) -> ColumnElement[str]:
    before, after = template.split("{holder}")
    # SET expressions see the old row, so the message names the dispatcher that held it.
    return literal(before) + func.coalesce(W.locked_by, "?") + literal(after)


def recover_expired_leases(
    session: Session, *, now: datetime | None = None, by: str | None = None
) -> list[int]:
    """Take back Processing rows whose lease ran out by the database's clock (their holder is gone).

    The lease is the holder's: its stored expiry decides, never the recovering dispatcher's own lease
    setting or clock. The interrupted attempt stays in the history. The first interruption since the
    row last got a result puts it back where it was without using an attempt (the dispatcher failed,
    not the writeback); a second one in a row counts, so a row that crashes every dispatcher runs out of
    attempts instead of looping for ever. Either way the row is marked uncertain, because the write may
    have reached Personify360 before the crash: the next send asks for its reference first. One
    statement for all rows, so a crash that left many thousands behind is recovered at once.
    """
    now = now or database_now(session)
    again = W.interruptions >= FREE_INTERRUPTIONS
    # A mailing's row is not its dispatchers' to lose while any of them still holds a chunk of it.
    live_chunk = (
        select(Delivery.id)
        .where(
            Delivery.writeback_id == W.id,
            Delivery.status == DeliveryStatus.PENDING.value,
            Delivery.locked_by.is_not(None),
            Delivery.lease_expires_at >= now,
        )
        .exists()
    )
    expired = (
        select(W.id)
        .where(W.status == Status.PROCESSING.value, W.lease_expires_at < now, ~live_chunk)
        .order_by(W.id)
    )
    if session.get_bind().dialect.name == "postgresql":
        # A row some holder is writing right now is not a dead holder's: leave it to the next run.
        expired = expired.with_for_update(skip_locked=True)
    recovered = session.execute(
        update(Writeback)
        .where(W.id.in_(expired.scalar_subquery()))
        .values(
            status=case((again, Status.ERROR.value), else_=func.coalesce(W.claimed_from, Status.ERROR.value)),
            attempts=case((again, W.attempts), else_=W.attempts - 1),
            next_attempt_at=case((again, now), else_=W.next_attempt_at),
            # Counted or not, the write may have arrived: the wait before looking for it starts now.
            uncertain_since=now,
            interruptions=W.interruptions + 1,
            # The change is the recovering dispatcher's; without one, the holder whose lease ran out.
            **{**UNLOCKED, "changed_by": by if by is not None else W.locked_by},
            delivery_uncertain=True,
            last_error=case(
                (again, _holder_message(LEASE_LOST_AGAIN_MESSAGE)), else_=_holder_message(LEASE_LOST_MESSAGE)
            ),
            last_http_status=None,
            updated_at=now,
        )
        .returning(W.id, W.interruptions)
        .execution_options(synchronize_session=False)
    ).all()
    counted = sorted(wid for wid, n in recovered if n > FREE_INTERRUPTIONS)
    free = sorted(wid for wid, n in recovered if n <= FREE_INTERRUPTIONS)
    for ids, message, counts in (
        (free, LEASE_LOST_MESSAGE.format(holder="that held it"), False),
        (counted, LEASE_LOST_AGAIN_MESSAGE.format(holder="that held it"), True),
    ):
        for batch in chunks(ids):
            session.execute(
                update(Attempt)
                .where(Attempt.writeback_id.in_(batch), Attempt.outcome.is_(None))
                .values(
                    outcome=AttemptOutcome.INTERRUPTED.value, finished_at=now, message=message, counted=counts
                )
                .execution_options(synchronize_session=False)
            )
            # A mailing's recipients that were in a chunk when it stopped may have arrived too; the
            # others were never sent, or their outcome says whether they may have.
            session.execute(
                update(Delivery)
                .where(
                    Delivery.writeback_id.in_(batch),
                    Delivery.status != DeliveryStatus.SENT.value,
                    Delivery.locked_by.is_not(None),
                )
                .values(uncertain=True, uncertain_since=now, locked_by=None, lease_expires_at=None)
                .execution_options(synchronize_session=False)
            )
    return sorted(wid for wid, _n in recovered)
