"""A writeback's way into the queue and into a dispatcher's hands: enqueue, claim under a lease, renew.

A lease is its holder's: its expiry is stored on the row from the database's clock, and a fencing token
(``lease_token``) makes a former holder's writes to the row fail.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    and_,
    any_,
    bindparam,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from writeback_console.domain import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_MAX_ATTEMPTS,
    OPEN_STATUSES,
    Kind,
    Status,
    new_ref,
    utcnow,
)
from writeback_console.intake import WritebackInput
from writeback_console.store.listing import get_writeback
from writeback_console.store.models import Attempt, Mailing, PrunedWriteback, Writeback
from writeback_console.store.rows import (
    CHUNK,
    CUSTOMER_ID_LIMIT,
    WRITEBACK_TABLE,
    NotFound,
    QueueError,
    W,
    WritebackRow,
    chunks,
    fits,
)


def _values(item: WritebackInput, ref: str, now: datetime, actor: str | None = None) -> dict[str, Any]:
    if item.kind is Kind.MAILING_ACTIVITY and item.scheduled_for is not None:
        status = Status.SCHEDULED
    else:
        status = Status.NEW
    return {
        "ref": ref,
        "kind": item.kind.value,
        "account": item.account,
        "email": item.email,
        "master_customer_id": item.master_customer_id,
        "sub_customer_id": item.sub_customer_id,
        "mailing_id": item.mailing_id,
        "payload": dict(item.payload),
        "occurred_at": item.occurred_at,
        "status": status.value,
        "attempts": 0,
        "max_attempts": DEFAULT_MAX_ATTEMPTS,
        "scheduled_for": item.scheduled_for if status is Status.SCHEDULED else None,
        "delivery_uncertain": False,
        "created_at": now,
        "updated_at": now,
        "changed_by": actor,
    }


def existing_refs(session: Session, refs: Iterable[str]) -> set[str]:
    """The references already taken: by a writeback, or by one retention pruned. A pruned row's
    reference is never given again, so importing an old file a second time cannot write it twice."""
    found: set[str] = set()
    ordered = list(refs)
    for start in range(0, len(ordered), CHUNK):
        batch = ordered[start : start + CHUNK]
        found.update(session.scalars(select(W.ref).where(W.ref.in_(batch))))
        found.update(session.scalars(select(PrunedWriteback.ref).where(PrunedWriteback.ref.in_(batch))))
    return found


def missing_mailings(session: Session, mailing_ids: Iterable[int]) -> set[int]:
    wanted = sorted(set(mailing_ids))
    found: set[int] = set()
    for batch in chunks(wanted):
        found.update(session.scalars(select(Mailing.id).where(Mailing.id.in_(batch))))
    return set(wanted) - found


def assign_refs(session: Session, items: Sequence[WritebackInput]) -> list[str]:
    """A unique reference for each item: its own if given, otherwise a fresh one not yet in use."""
    refs = [item.ref or new_ref() for item in items]
    generated = {i for i, item in enumerate(items) if item.ref is None}
    while True:
        seen: set[str] = set()
        clashes: set[int] = set()
        taken = existing_refs(session, (refs[i] for i in generated))
        for i, ref in enumerate(refs):
            if i in generated and (ref in seen or ref in taken):
                clashes.add(i)
            seen.add(ref)
        if not clashes:
            return refs
        for i in clashes:
            refs[i] = new_ref()


def enqueue(
    session: Session, item: WritebackInput, *, now: datetime | None = None, actor: str | None = None
) -> WritebackRow:
    """Queue one validated writeback and return it as stored."""
    now = now or utcnow()
    if item.mailing_id is not None and missing_mailings(session, [item.mailing_id]):
        raise NotFound(f"no mailing with id {item.mailing_id}")
    if item.ref is not None and existing_refs(session, [item.ref]):
        raise QueueError(f"reference {item.ref} is already in use")
    (ref,) = assign_refs(session, [item])
    new_id = session.execute(
        insert(Writeback).values(_values(item, ref, now, actor)).returning(W.id)
    ).scalar_one()
    return get_writeback(session, new_id)


def enqueue_many(
    session: Session,
    items: Iterable[WritebackInput],
    *,
    now: datetime | None = None,
    batch: int = 2000,
    actor: str | None = None,
    on_batch: Callable[[Sequence[tuple[int, str]]], None] | None = None,
) -> int:
    """Queue validated writebacks in bulk (no ORM objects); the caller's transaction holds them all.

    ``on_batch`` is given each batch's new rows as (id, reference), for an audit entry to link them.
    """
    now = now or utcnow()
    count = 0
    pending: list[WritebackInput] = []

    def flush() -> None:
        refs = assign_refs(session, pending)
        values = [_values(i, r, now, actor) for i, r in zip(pending, refs, strict=True)]
        if on_batch is None:
            session.execute(insert(Writeback), values)
        else:
            # Both dialects send one multi-row INSERT … RETURNING per few hundred rows ("insertmanyvalues").
            added = session.execute(insert(Writeback).returning(W.id, W.ref), values)
            on_batch([(int(i), str(r)) for i, r in added])
        pending.clear()

    for item in items:
        pending.append(item)
        count += 1
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    return count


def database_now(session: Session) -> datetime:
    """The database's clock, by which every lease is set and judged.

    On PostgreSQL that is the server's clock, the same for every dispatcher whatever their own clocks
    say. A SQLite file is shared only by processes on one machine, so there it is this machine's clock.
    """
    if session.get_bind().dialect.name == "postgresql":
        value = session.execute(select(func.statement_timestamp())).scalar_one()
        return cast(datetime, value).astimezone(UTC)
    return utcnow()


def eligible_condition(run_started_at: datetime, settle: timedelta = timedelta(0)) -> ColumnElement[bool]:
    """SQL form of :func:`writeback_console.domain.is_eligible`; a test keeps the two in step."""
    rule = or_(
        W.status == Status.NEW.value,
        and_(W.status == Status.SCHEDULED.value, W.scheduled_for <= run_started_at),
        and_(
            W.status == Status.ERROR.value,
            W.attempts < W.max_attempts,
            or_(W.next_attempt_at.is_(None), W.next_attempt_at <= run_started_at),
        ),
    )
    if settle <= timedelta(0):
        return rule
    settled = or_(W.uncertain_since.is_(None), W.uncertain_since < run_started_at - settle)
    return and_(rule, settled)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A row a dispatcher now holds the lease on, with what it needs to send it."""

    id: int
    ref: str
    kind: Kind
    account: str
    email: str | None
    master_customer_id: str | None
    sub_customer_id: int | None
    mailing_id: int | None
    payload: Mapping[str, Any]
    occurred_at: datetime
    attempt: int
    max_attempts: int
    delivery_uncertain: bool
    claimed_from: Status
    #: The fencing token of this claim: every write the holder makes to the row names it.
    token: int = 0
    #: The database's time of the claim, and until when the lease runs.
    locked_at: datetime | None = None
    lease_expires_at: datetime | None = None


def claimed_row(
    r: Any, *, token: int, locked_at: datetime | None, lease_expires_at: datetime | None
) -> Claimed:
    """A ``Claimed`` from a writeback row (ORM object or result row) and the lease its holder has."""
    return Claimed(
        id=r.id,
        ref=r.ref,
        kind=Kind(r.kind),
        account=r.account,
        email=r.email,
        master_customer_id=r.master_customer_id,
        sub_customer_id=r.sub_customer_id,
        mailing_id=r.mailing_id,
        payload=r.payload or {},
        occurred_at=r.occurred_at,
        attempt=r.attempts,
        max_attempts=r.max_attempts,
        delivery_uncertain=bool(r.delivery_uncertain),
        claimed_from=Status(r.claimed_from or Status.NEW.value),
        token=token,
        locked_at=locked_at,
        lease_expires_at=lease_expires_at,
    )


#: Which lease a holder names in its writes: writeback id → fencing token.
Leases = Mapping[int, int]


def fenced(leases: Iterable[tuple[int, int]]) -> ColumnElement[bool]:
    """Rows still Processing under exactly these (id, token) pairs: nobody else took them meanwhile."""
    return and_(tuple_(W.id, W.lease_token).in_(list(leases)), W.status == Status.PROCESSING.value)


def _pairs(leases: Leases) -> list[tuple[int, int]]:
    return sorted(leases.items())


def pair_chunks(leases: Leases) -> Iterator[list[tuple[int, int]]]:
    pairs = _pairs(leases)
    for start in range(0, len(pairs), CHUNK):
        yield pairs[start : start + CHUNK]


def claim(
    session: Session,
    *,
    dispatcher: str,
    run_started_at: datetime,
    limit: int,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    now: datetime | None = None,
    skip_accounts: Iterable[str] = (),
    settle_seconds: float = 0,
    interrupted: bool | None = None,
    only: Iterable[int] | None = None,
) -> list[Claimed]:
    """Claim up to ``limit`` eligible rows for one dispatcher in one atomic statement.

    PostgreSQL locks the chosen rows with ``FOR UPDATE SKIP LOCKED`` so concurrent dispatchers take
    disjoint sets; SQLite is serialised by the write lock the caller's ``BEGIN IMMEDIATE`` holds.
    The lease runs ``lease_seconds`` from the database's clock (``now`` only for tests with a fixed
    clock) and carries a new fencing token. Every claim starts an attempt, written in the same
    transaction. ``interrupted`` True takes only rows a dispatcher died sending, False only the others.
    ``only`` limits the claim to those ids (a cycle sending one writeback at a person's request).
    """
    now = now or database_now(session)
    expires = now + timedelta(seconds=lease_seconds)
    skipped = sorted(set(skip_accounts))
    chosen = (
        select(W.id)
        .where(
            W.status.in_([s.value for s in OPEN_STATUSES]),
            eligible_condition(run_started_at, timedelta(seconds=settle_seconds)),
        )
        .order_by(W.id)
        .limit(limit)
    )
    if skipped:
        chosen = chosen.where(W.account.not_in(skipped))
    if interrupted is not None:
        chosen = chosen.where(W.interruptions > 0 if interrupted else W.interruptions == 0)
    if only is not None:
        chosen = chosen.where(one_of(session, only))
    if session.get_bind().dialect.name == "postgresql":
        chosen = chosen.with_for_update(skip_locked=True)
    result = session.execute(
        update(Writeback)
        .where(W.id.in_(chosen.scalar_subquery()))
        .values(
            status=Status.PROCESSING.value,
            claimed_from=W.status,
            attempts=W.attempts + 1,
            locked_by=dispatcher,
            locked_at=now,
            lease_expires_at=expires,
            lease_token=W.lease_token + 1,
            updated_at=now,
            changed_by=dispatcher,
        )
        .returning(
            W.id,
            W.ref,
            W.kind,
            W.account,
            W.email,
            W.master_customer_id,
            W.sub_customer_id,
            W.mailing_id,
            W.payload,
            W.occurred_at,
            W.attempts,
            W.max_attempts,
            W.delivery_uncertain,
            W.claimed_from,
            W.lease_token,
        )
    ).all()
    claimed = sorted(
        (claimed_row(r, token=int(r.lease_token), locked_at=now, lease_expires_at=expires) for r in result),
        key=lambda c: c.id,
    )
    if claimed:
        # Uncounted attempts (outages, a first interruption) stay in the history, so the number of the
        # next history entry can be ahead of the attempt count.
        numbered: dict[int, int] = {
            wid: number
            for wid, number in session.execute(
                select(Attempt.writeback_id, func.max(Attempt.number))
                .where(Attempt.writeback_id.in_([c.id for c in claimed]))
                .group_by(Attempt.writeback_id)
            )
        }
        session.execute(
            insert(Attempt),
            [
                {
                    "writeback_id": c.id,
                    "number": (numbered.get(c.id) or 0) + 1,
                    "started_at": now,
                    "dispatcher": dispatcher,
                    # An attempt beyond the automatic ones exists only because a person granted it.
                    "manual": c.attempt > DEFAULT_MAX_ATTEMPTS,
                    "counted": True,
                }
                for c in claimed
            ],
        )
    return claimed


def renew_leases(
    session: Session, leases: Leases, *, lease_seconds: float, now: datetime | None = None
) -> set[int]:
    """Extend the leases this holder still has; returns their ids. The others it has lost."""
    now = now or database_now(session)
    held: set[int] = set()
    for batch in pair_chunks(leases):
        held.update(
            session.execute(
                update(Writeback)
                .where(fenced(batch))
                .values(locked_at=now, lease_expires_at=now + timedelta(seconds=lease_seconds))
                .returning(W.id)
                .execution_options(synchronize_session=False)
            ).scalars()
        )
    return held


def held_leases(session: Session, leases: Leases) -> set[int]:
    """Which of these leases are still held, locking those rows until the transaction ends."""
    held: set[int] = set()
    for batch in pair_chunks(leases):
        # In id order, as every statement here takes row locks, so two writers never deadlock.
        query = select(W.id).where(fenced(batch)).order_by(W.id)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        held.update(session.scalars(query))
    return held


#: Up to this many ids go in the statement one parameter each; more go as one parameter holding them all.
_IDS_AS_PARAMETERS = 1000


def one_of(session: Session, ids: Iterable[int]) -> ColumnElement[bool]:
    """The row is one of ``ids`` (a cycle for some writebacks only), however many they are.

    An ``IN`` list takes a parameter per id, and databases cap them (PostgreSQL at 65,535 a statement,
    the SQLite of many builds at 32,766), yet a retry of every row matching a filter may name more.
    """
    chosen = sorted({int(i) for i in ids})
    if len(chosen) <= _IDS_AS_PARAMETERS:
        return W.id.in_(chosen)
    if session.get_bind().dialect.name == "postgresql":
        return W.id == any_(literal(chosen, ARRAY(Integer)))
    each = func.json_each(literal(json.dumps(chosen))).table_valued("value")
    return W.id.in_(select(each.c.value))


def count_eligible(
    session: Session,
    run_started_at: datetime,
    skip_accounts: Iterable[str] = (),
    settle_seconds: float = 0,
    *,
    only: Iterable[int] | None = None,
) -> int:
    """How many rows a run starting now would claim (for progress: "remaining")."""
    query = select(func.count()).where(
        W.status.in_([s.value for s in OPEN_STATUSES]),
        eligible_condition(run_started_at, timedelta(seconds=settle_seconds)),
    )
    skipped = sorted(set(skip_accounts))
    if skipped:
        query = query.where(W.account.not_in(skipped))
    if only is not None:
        query = query.where(one_of(session, only))
    return int(session.execute(query).scalar_one())


def store_constituents(session: Session, found: Sequence[tuple[int, str, int]]) -> None:
    """Keep constituents found by email on their rows (id, master, sub), so support sees who it went to."""
    # An id from Personify360 that the schema cannot hold is not kept: it is for information only.
    usable = [(i, m, s) for i, m, s in found if fits(m, CUSTOMER_ID_LIMIT) and 0 <= s < 2**31]
    if usable:
        session.connection().execute(
            update(WRITEBACK_TABLE)
            .where(WRITEBACK_TABLE.c.id == bindparam("wid"), WRITEBACK_TABLE.c.master_customer_id.is_(None))
            .values(master_customer_id=bindparam("master"), sub_customer_id=bindparam("sub")),
            [{"wid": i, "master": m, "sub": s} for i, m, s in usable],
        )
