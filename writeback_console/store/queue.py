"""Every database operation on the writeback queue, as named functions over a caller's session.

The caller owns the unit of work: these functions never commit. Anything that claims or changes rows
on SQLite must run inside :func:`writeback_console.store.engine.write_transaction`, which takes the
write lock at BEGIN (SQLite has no ``FOR UPDATE``).
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Select,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from writeback_console.domain import (
    DEFAULT_MAX_ATTEMPTS,
    FREE_INTERRUPTIONS,
    OPEN_STATUSES,
    REF_PREFIX,
    Kind,
    QueueState,
    Status,
    manual_retry_decision,
    new_ref,
    normalize_ref,
    utcnow,
)
from writeback_console.intake import WritebackInput
from writeback_console.store.models import (
    ACTIVE_MAILING_STATUSES,
    Attempt,
    AuditEvent,
    AuditEventRow,
    Delivery,
    Mailing,
    MailingRecipient,
    RemoteHealth,
    Setting,
    Writeback,
)

W = Writeback.__table__.c
#: Ids per statement, well under SQLite's and psycopg's parameter limits.
CHUNK = 500
EXCERPT_LIMIT = 2000
MESSAGE_LIMIT = 4000


def current_actor() -> str:
    """Who is doing a manual action: the operating-system user on this host."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some service environments
        user = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


def dispatcher_identity() -> str:
    """The lease holder name of this process: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class QueueError(Exception):
    """A queue operation was refused; the message says why in words for the user."""


class NotFound(QueueError):
    pass


@dataclass(frozen=True, slots=True)
class Refusal:
    id: int
    ref: str
    reason: str


class RetryRefused(QueueError):
    """Some of the rows asked for cannot be retried now; nothing was changed."""

    def __init__(self, refusals: Sequence[Refusal]) -> None:
        lines = [f"{r.ref}: {r.reason}" for r in refusals[:20]]
        if len(refusals) > 20:
            lines.append(f"… and {len(refusals) - 20:,} more")
        super().__init__(f"{len(refusals):,} row(s) cannot be retried:\n  " + "\n  ".join(lines))
        self.refusals = list(refusals)


@dataclass(frozen=True, slots=True)
class WritebackRow:
    """A writeback as plain data, safe to hand to another thread or print."""

    id: int
    ref: str
    kind: Kind
    account: str
    email: str | None
    master_customer_id: str | None
    sub_customer_id: int | None
    mailing_id: int | None
    status: Status
    attempts: int
    max_attempts: int
    occurred_at: datetime
    scheduled_for: datetime | None
    next_attempt_at: datetime | None
    sent_at: datetime | None
    last_error: str | None
    last_http_status: int | None
    locked_by: str | None
    locked_at: datetime | None
    delivery_uncertain: bool
    created_at: datetime
    updated_at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)
    #: Until when the dispatcher holding a Processing row has it (the database's clock).
    lease_expires_at: datetime | None = None
    #: Since when an earlier write may have arrived (see ``delivery_uncertain``).
    uncertain_since: datetime | None = None

    @property
    def state(self) -> QueueState:
        return QueueState(
            self.status,
            self.attempts,
            self.max_attempts,
            self.scheduled_for,
            self.next_attempt_at,
            self.uncertain_since,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = value.isoformat().replace("+00:00", "Z")
        data["payload"] = dict(self.payload)
        return data


#: The columns a WritebackRow is read from: its fields, in order.
ROW_COLUMNS = tuple(W[f.name] for f in fields(WritebackRow))


def _row(r: Any) -> WritebackRow:
    m = dict(r._mapping)
    m["kind"] = Kind(m["kind"])
    m["status"] = Status(m["status"])
    m["delivery_uncertain"] = bool(m["delivery_uncertain"])
    m["payload"] = m["payload"] or {}
    return WritebackRow(**m)


def _chunks(items: Sequence[int], size: int = CHUNK) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _changed(result: Any) -> int:
    """Rows an UPDATE or DELETE touched (``Session.execute`` is typed as returning a plain Result)."""
    return int(cast("CursorResult[Any]", result).rowcount)


def _cut(text: str | None, limit: int) -> str | None:
    """Text from outside (Personify360's answers) as the database will take it: no NUL, not too long."""
    if text is None:
        return None
    # PostgreSQL refuses NUL in text; a server may well send one.
    text = text.replace("\x00", "\u2400")
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


#: The length of delivery.activity_id, and of a constituent id, in the schema.
ACTIVITY_ID_LIMIT = 64
CUSTOMER_ID_LIMIT = 24


def _fits(text: str | None, limit: int) -> bool:
    return text is not None and len(text) <= limit and "\x00" not in text


# --- enqueue -------------------------------------------------------------------------------------


def _values(item: WritebackInput, ref: str, now: datetime) -> dict[str, Any]:
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
    }


def existing_refs(session: Session, refs: Iterable[str]) -> set[str]:
    found: set[str] = set()
    ordered = list(refs)
    for start in range(0, len(ordered), CHUNK):
        batch = ordered[start : start + CHUNK]
        found.update(session.scalars(select(W.ref).where(W.ref.in_(batch))))
    return found


def missing_mailings(session: Session, mailing_ids: Iterable[int]) -> set[int]:
    wanted = sorted(set(mailing_ids))
    found: set[int] = set()
    for batch in _chunks(wanted):
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


def enqueue(session: Session, item: WritebackInput, *, now: datetime | None = None) -> WritebackRow:
    """Queue one validated writeback and return it as stored."""
    now = now or utcnow()
    if item.mailing_id is not None and missing_mailings(session, [item.mailing_id]):
        raise NotFound(f"no mailing with id {item.mailing_id}")
    if item.ref is not None and existing_refs(session, [item.ref]):
        raise QueueError(f"reference {item.ref} is already in use")
    (ref,) = assign_refs(session, [item])
    new_id = session.execute(insert(Writeback).values(_values(item, ref, now)).returning(W.id)).scalar_one()
    return get_writeback(session, new_id)


def enqueue_many(
    session: Session, items: Iterable[WritebackInput], *, now: datetime | None = None, batch: int = 2000
) -> int:
    """Queue validated writebacks in bulk (no ORM objects); the caller's transaction holds them all."""
    now = now or utcnow()
    count = 0
    pending: list[WritebackInput] = []

    def flush() -> None:
        refs = assign_refs(session, pending)
        session.execute(insert(Writeback), [_values(i, r, now) for i, r in zip(pending, refs, strict=True)])
        pending.clear()

    for item in items:
        pending.append(item)
        count += 1
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    return count


# --- the dispatcher's side -----------------------------------------------------------------------


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
            or_(W.next_attempt_at.is_(None), W.next_attempt_at < run_started_at),
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


#: Which lease a holder names in its writes: writeback id → fencing token.
Leases = Mapping[int, int]


def _fenced(leases: Iterable[tuple[int, int]]) -> ColumnElement[bool]:
    """Rows still Processing under exactly these (id, token) pairs: nobody else took them meanwhile."""
    return and_(tuple_(W.id, W.lease_token).in_(list(leases)), W.status == Status.PROCESSING.value)


def _pairs(leases: Leases) -> list[tuple[int, int]]:
    return sorted(leases.items())


def _pair_chunks(leases: Leases) -> Iterator[list[tuple[int, int]]]:
    pairs = _pairs(leases)
    for start in range(0, len(pairs), CHUNK):
        yield pairs[start : start + CHUNK]


def claim(
    session: Session,
    *,
    dispatcher: str,
    run_started_at: datetime,
    limit: int,
    lease_seconds: float = 900,
    now: datetime | None = None,
    skip_accounts: Iterable[str] = (),
    settle_seconds: float = 0,
    interrupted: bool | None = None,
) -> list[Claimed]:
    """Claim up to ``limit`` eligible rows for one dispatcher in one atomic statement.

    PostgreSQL locks the chosen rows with ``FOR UPDATE SKIP LOCKED`` so concurrent dispatchers take
    disjoint sets; SQLite is serialised by the write lock the caller's ``BEGIN IMMEDIATE`` holds.
    The lease runs ``lease_seconds`` from the database's clock (``now`` only for tests with a fixed
    clock) and carries a new fencing token. Every claim starts an attempt, written in the same
    transaction. ``interrupted`` True takes only rows a dispatcher died sending, False only the others.
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
        (
            Claimed(
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
                claimed_from=Status(r.claimed_from),
                token=int(r.lease_token),
                locked_at=now,
                lease_expires_at=expires,
            )
            for r in result
        ),
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
    for batch in _pair_chunks(leases):
        held.update(
            session.execute(
                update(Writeback)
                .where(_fenced(batch))
                .values(locked_at=now, lease_expires_at=now + timedelta(seconds=lease_seconds))
                .returning(W.id)
                .execution_options(synchronize_session=False)
            ).scalars()
        )
    return held


def held_leases(session: Session, leases: Leases) -> set[int]:
    """Which of these leases are still held, locking those rows until the transaction ends."""
    held: set[int] = set()
    for batch in _pair_chunks(leases):
        # In id order, as every statement here takes row locks, so two writers never deadlock.
        query = select(W.id).where(_fenced(batch)).order_by(W.id)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        held.update(session.scalars(query))
    return held


def _finish_attempt(
    session: Session,
    writeback_id: int,
    *,
    outcome: str,
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
            outcome=outcome,
            finished_at=now,
            http_status=http_status,
            message=_cut(message, MESSAGE_LIMIT),
            response_excerpt=_cut(response_excerpt, EXCERPT_LIMIT),
            counted=counted,
        )
    )


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


_T = cast(Table, Writeback.__table__)
#: What every end of a claim writes: no lease, nothing to restore.
UNLOCKED: dict[str, Any] = {
    "locked_by": None,
    "locked_at": None,
    "lease_expires_at": None,
    "claimed_from": None,
}
_A = cast(Table, Attempt.__table__)


@dataclass(frozen=True, slots=True)
class _Closed:
    """How an open attempt ends, for :func:`_close_attempts`."""

    writeback_id: int
    outcome: str
    at: datetime
    http_status: int | None
    message: str | None
    response_excerpt: str | None


def _close_attempts(
    conn: Any, closed: Sequence[_Closed], *, counted: bool, dispatcher: str | None = None
) -> None:
    """Close the open attempt of each row (of this dispatcher's, if named) in one statement."""
    condition = and_(_A.c.writeback_id == bindparam("wid"), _A.c.outcome.is_(None))
    if dispatcher is not None:
        condition = and_(condition, _A.c.dispatcher == dispatcher)
    conn.execute(
        update(_A)
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
                "outcome": c.outcome,
                "at": c.at,
                "http": c.http_status,
                "message": _cut(c.message, MESSAGE_LIMIT),
                "excerpt": _cut(c.response_excerpt, EXCERPT_LIMIT),
            }
            for c in closed
        ],
    )


def record_results(session: Session, results: Sequence[AttemptResult], *, dispatcher: str) -> set[int]:
    """Record many attempts in a few statements; returns the ids whose lease the caller still held.

    A row whose lease was lost meanwhile (recovered by another run, or the holder slept past it) is
    left alone: its fencing token no longer matches, its attempt was closed as interrupted, and it is
    checked by reference before it is sent again.
    """
    if not results:
        return set()
    held = held_leases(session, {r.writeback_id: r.token for r in results})
    mine = [r for r in results if r.writeback_id in held]
    sent = [r for r in mine if r.ok]
    failed = [r for r in mine if not r.ok]
    conn = session.connection()
    if sent:
        conn.execute(
            update(_T)
            .where(_T.c.id == bindparam("wid"))
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
            update(_T)
            .where(_T.c.id == bindparam("wid"))
            .values(
                status=Status.ERROR.value,
                next_attempt_at=bindparam("at"),
                **UNLOCKED,
                interruptions=0,
                # Knowing the earlier write is absent settles the doubt; a new doubt adds to it.
                delivery_uncertain=or_(
                    and_(_T.c.delivery_uncertain, bindparam("keep", type_=Boolean)),
                    bindparam("mha", type_=Boolean),
                ),
                uncertain_since=case(
                    (bindparam("mha", type_=Boolean), bindparam("at")),
                    (bindparam("keep", type_=Boolean), _T.c.uncertain_since),
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
                    "keep": not r.checked_absent,
                    "mha": r.may_have_arrived,
                    "message": _cut(r.message, MESSAGE_LIMIT),
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
                    "sent" if r.ok else "error",
                    r.at,
                    r.http_status,
                    r.message,
                    r.response_excerpt,
                )
                for r in mine
            ],
            counted=True,
            dispatcher=dispatcher,
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
) -> bool:
    """Record that Personify360 accepted the row. False if this lease is no longer held."""
    result = AttemptResult(writeback_id, token, True, sent_at, http_status, message)
    return writeback_id in record_results(session, [result], dispatcher=dispatcher)


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
) -> bool:
    """Record a failed attempt; the row is retried automatically in a later run while attempts remain."""
    result = AttemptResult(
        writeback_id, token, False, failed_at, http_status, message, response_excerpt, may_have_arrived
    )
    return writeback_id in record_results(session, [result], dispatcher=dispatcher)


def mark_no_remote_recipients(session: Session, writeback_id: int, *, token: int, now: datetime) -> bool:
    """A mailing activity whose mailing reached nobody known to Personify360: final, not an error."""
    done = _changed(
        session.execute(
            update(Writeback)
            .where(_fenced([(writeback_id, token)]), W.kind == Kind.MAILING_ACTIVITY.value)
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
            outcome="no_remote_recipients",
            now=now,
            message="the mailing has no recipient that exists in Personify360",
        )
    return bool(done)


def release(session: Session, leases: Leases) -> int:
    """Put claimed rows that were never sent back exactly as they were; no attempt is counted."""
    released = 0
    for batch in _pair_chunks(leases):
        rows = (
            session.execute(
                update(Writeback)
                .where(_fenced(batch))
                .values(status=W.claimed_from, attempts=W.attempts - 1, **UNLOCKED)
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
    outcome: str
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
        update(_T)
        .where(_T.c.id == bindparam("wid"))
        .values(
            status=_T.c.claimed_from,
            attempts=_T.c.attempts - 1,
            **UNLOCKED,
            delivery_uncertain=or_(_T.c.delivery_uncertain, bindparam("mha", type_=Boolean)),
            # A write that may have arrived starts the wait before it is looked for.
            uncertain_since=case(
                (bindparam("mha", type_=Boolean), bindparam("at")), else_=_T.c.uncertain_since
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


def recover_expired_leases(session: Session, *, now: datetime | None = None) -> list[int]:
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
    expired = select(W.id).where(W.status == Status.PROCESSING.value, W.lease_expires_at < now).order_by(W.id)
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
            **UNLOCKED,
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
        for batch in _chunks(ids):
            session.execute(
                update(Attempt)
                .where(Attempt.writeback_id.in_(batch), Attempt.outcome.is_(None))
                .values(outcome="interrupted", finished_at=now, message=message, counted=counts)
                .execution_options(synchronize_session=False)
            )
            # Every unfinished recipient of a mailing may have arrived too.
            session.execute(
                update(Delivery)
                .where(Delivery.writeback_id.in_(batch), Delivery.status != "sent")
                .values(uncertain=True)
                .execution_options(synchronize_session=False)
            )
    return sorted(wid for wid, _n in recovered)


# --- manual actions ------------------------------------------------------------------------------


def record_audit(
    session: Session,
    *,
    actor: str,
    action: str,
    rows: Sequence[tuple[int, str]],
    now: datetime,
    filter: Mapping[str, Any] | None = None,
    detail: Mapping[str, Any] | None = None,
    row_count: int | None = None,
) -> int:
    """Write who did what to which rows; ``row_count`` for bulk actions that link no rows one by one."""
    event_id = session.execute(
        insert(AuditEvent)
        .values(
            at=now,
            actor=actor,
            action=action,
            row_count=len(rows) if row_count is None else row_count,
            filter=dict(filter) if filter is not None else None,
            detail=dict(detail) if detail is not None else None,
        )
        .returning(AuditEvent.id)
    ).scalar_one()
    if rows:
        session.execute(
            insert(AuditEventRow),
            [{"event_id": event_id, "writeback_id": i, "ref": r} for i, r in rows],
        )
    return int(event_id)


def _states(session: Session, ids: Sequence[int]) -> dict[int, tuple[str, QueueState]]:
    found: dict[int, tuple[str, QueueState]] = {}
    for batch in _chunks(list(ids)):
        for r in session.execute(
            select(
                W.id, W.ref, W.status, W.attempts, W.max_attempts, W.scheduled_for, W.next_attempt_at
            ).where(W.id.in_(batch))
        ):
            found[r.id] = (
                r.ref,
                QueueState(Status(r.status), r.attempts, r.max_attempts, r.scheduled_for, r.next_attempt_at),
            )
    return found


@dataclass(frozen=True, slots=True)
class RetryResult:
    retried: list[tuple[int, str]]
    skipped: list[Refusal]
    audit_event_id: int | None


def manual_retry(
    session: Session,
    ids: Sequence[int],
    *,
    actor: str,
    now: datetime | None = None,
    filter: Mapping[str, Any] | None = None,
    skip_ineligible: bool = False,
) -> RetryResult:
    """Grant exactly one more attempt to Error rows whose automatic retries are used up.

    Rows that may not be retried are refused with the reason; unless ``skip_ineligible``, one such row
    refuses the whole request and nothing changes. The attempt history stays as it was.
    """
    now = now or utcnow()
    wanted = list(dict.fromkeys(ids))
    states = _states(session, wanted)
    refusals = [Refusal(i, f"#{i}", "no such writeback") for i in wanted if i not in states]
    allowed: list[tuple[int, str]] = []
    for i in wanted:
        if i not in states:
            continue
        ref, state = states[i]
        decision = manual_retry_decision(state)
        if decision.allowed:
            allowed.append((i, ref))
        else:
            refusals.append(Refusal(i, ref, decision.reason))
    if refusals and not skip_ineligible:
        raise RetryRefused(refusals)
    changed: list[tuple[int, str]] = []
    refs = dict(allowed)
    for batch in _chunks([i for i, _ in allowed]):
        # The condition is repeated in SQL so that a row a dispatcher changed meanwhile is not touched.
        changed_ids = (
            session.execute(
                update(Writeback)
                .where(
                    W.id.in_(batch),
                    W.status == Status.ERROR.value,
                    W.attempts >= W.max_attempts,
                )
                .values(
                    status=Status.NEW.value,
                    max_attempts=W.attempts + 1,
                    next_attempt_at=None,
                    updated_at=now,
                )
                .returning(W.id)
            )
            .scalars()
            .all()
        )
        changed.extend((i, refs[i]) for i in sorted(changed_ids))
    changed_set = set(changed)
    lost = [
        Refusal(i, r, "changed by someone else meanwhile") for i, r in allowed if (i, r) not in changed_set
    ]
    if lost and not skip_ineligible:
        raise RetryRefused(lost)
    event = None
    if changed:
        event = record_audit(
            session,
            actor=actor,
            action="retry",
            rows=changed,
            now=now,
            filter=filter,
            detail={"granted_attempts": 1},
        )
    return RetryResult(changed, refusals + lost, event)


def schedule_mailing_activity(
    session: Session,
    mailing_id: int,
    *,
    at: datetime | None,
    actor: str,
    now: datetime | None = None,
) -> WritebackRow:
    """Queue the mailing activity of a mailing: at the next run (``at`` None) or at a future time."""
    now = now or utcnow()
    mailing = session.get(Mailing, mailing_id)
    if mailing is None:
        raise NotFound(f"no mailing with id {mailing_id}")
    if at is not None and at <= now:
        raise QueueError(f"the time {at.isoformat()} has already passed; choose a time in the future")
    existing = session.execute(
        select(W.ref, W.status)
        .where(
            W.mailing_id == mailing_id,
            W.kind == Kind.MAILING_ACTIVITY.value,
            W.status.in_([s.value for s in (*ACTIVE_MAILING_STATUSES, Status.SENT)]),
        )
        .order_by(W.id.desc())
    ).first()
    if existing is not None:
        what = "retry" if Status(existing.status) is Status.ERROR else "reschedule"
        raise QueueError(
            f"mailing {mailing_id} already has mailing activity {existing.ref} "
            f"({Status(existing.status).label}); {what} that one instead"
            if Status(existing.status) is not Status.SENT
            else f"the mailing activity of mailing {mailing_id} was already sent ({existing.ref})"
        )
    item = WritebackInput(
        kind=Kind.MAILING_ACTIVITY,
        account=mailing.account,
        occurred_at=mailing.sent_at or now,
        mailing_id=mailing_id,
        scheduled_for=at,
        payload={"mailing_name": mailing.name},
    )
    try:
        # The database holds the line too: a second active row for one mailing is refused.
        with session.begin_nested():
            row = enqueue(session, item, now=now)
    except IntegrityError:
        raise QueueError(
            f"mailing {mailing_id} was given mailing activity by someone else at the same moment"
        ) from None
    record_audit(
        session,
        actor=actor,
        action="schedule" if at else "send_now",
        rows=[(row.id, row.ref)],
        now=now,
        detail={"mailing_id": mailing_id, "scheduled_for": at.isoformat() if at else None},
    )
    return row


def _mailing_activity_row(session: Session, writeback_id: int) -> WritebackRow:
    row = get_writeback(session, writeback_id)
    if row.kind is not Kind.MAILING_ACTIVITY:
        raise QueueError(f"{row.ref} is {row.kind.label}; only Mailing Activity can be scheduled")
    return row


def reschedule(
    session: Session, writeback_id: int, *, at: datetime | None, actor: str, now: datetime | None = None
) -> WritebackRow:
    """Move a waiting mailing activity to another time (``at`` None: send at the next run)."""
    now = now or utcnow()
    row = _mailing_activity_row(session, writeback_id)
    if row.status not in (Status.SCHEDULED, Status.NEW):
        raise QueueError(f"{row.ref} is {row.status.label}; only Scheduled or New rows can be rescheduled")
    if at is not None and at <= now:
        raise QueueError(f"the time {at.isoformat()} has already passed; choose a time in the future")
    status = Status.SCHEDULED if at is not None else Status.NEW
    done = _changed(
        session.execute(
            update(Writeback)
            .where(W.id == writeback_id, W.status == row.status.value)
            .values(status=status.value, scheduled_for=at, updated_at=now)
        )
    )
    if not done:
        raise QueueError(f"{row.ref} was picked up by a dispatcher meanwhile")
    record_audit(
        session,
        actor=actor,
        action="reschedule",
        rows=[(row.id, row.ref)],
        now=now,
        detail={
            "from": row.scheduled_for.isoformat() if row.scheduled_for else None,
            "to": at.isoformat() if at else None,
        },
    )
    return get_writeback(session, writeback_id)


def cancel_scheduled(
    session: Session, writeback_id: int, *, actor: str, now: datetime | None = None
) -> WritebackRow:
    """Withdraw a Scheduled mailing activity before it goes out: it stays, as Cancelled, for good.

    Cancelled is a recorded state, never a delete: the row keeps its reference, its history and its
    recipients' deliveries, so automatic scheduling does not make the mailing's activity again, and if
    staff schedule it anew, recipients that already have their activity are not written twice.
    """
    now = now or utcnow()
    row = _mailing_activity_row(session, writeback_id)
    if row.status is not Status.SCHEDULED:
        raise QueueError(f"{row.ref} is {row.status.label}; only Scheduled rows can be cancelled")
    done = _changed(
        session.execute(
            update(Writeback)
            .where(W.id == writeback_id, W.status == Status.SCHEDULED.value)
            .values(status=Status.CANCELLED.value, updated_at=now)
        )
    )
    if not done:
        raise QueueError(f"{row.ref} was picked up by a dispatcher meanwhile")
    record_audit(
        session,
        actor=actor,
        action="cancel",
        rows=[(row.id, row.ref)],
        now=now,
        detail={
            "mailing_id": row.mailing_id,
            "scheduled_for": row.scheduled_for.isoformat() if row.scheduled_for else None,
        },
    )
    return get_writeback(session, writeback_id)


# --- reading -------------------------------------------------------------------------------------


def get_writeback(session: Session, key: int | str) -> WritebackRow:
    """One writeback by id, or by reference (any case).

    A mailing recipient's activity in Personify360 ends with that recipient's own reference; it
    finds the mailing-activity row that carries it.
    """
    if isinstance(key, str) and not key.isdigit():
        ref = normalize_ref(key)
        condition: ColumnElement[bool] = W.ref == ref
        row = session.execute(select(*ROW_COLUMNS).where(condition)).first()
        if row is None:
            carrier = select(Delivery.writeback_id).where(Delivery.ref == ref).limit(1).scalar_subquery()
            row = session.execute(select(*ROW_COLUMNS).where(W.id == carrier)).first()
    else:
        row = session.execute(select(*ROW_COLUMNS).where(W.id == int(key))).first()
    if row is None:
        raise NotFound(f"no writeback {key}")
    return _row(row)


def get_writebacks(session: Session, ids: Sequence[int]) -> dict[int, WritebackRow]:
    """Many writebacks by id, a chunk per query (a selection can be thousands of rows)."""
    rows: dict[int, WritebackRow] = {}
    for batch in _chunks(list(dict.fromkeys(ids))):
        for r in session.execute(select(*ROW_COLUMNS).where(W.id.in_(batch))):
            row = _row(r)
            rows[row.id] = row
    return rows


def resolve_ids(session: Session, keys: Iterable[str]) -> list[int]:
    """Ids for a mix of ids and references as typed on a command line; unknown ones are an error."""
    ids: list[int] = []
    missing: list[str] = []
    for key in keys:
        try:
            ids.append(get_writeback(session, key).id)
        except NotFound:
            missing.append(key)
    if missing:
        raise NotFound("no writeback " + ", ".join(missing))
    return ids


@dataclass(frozen=True, slots=True)
class AttemptRow:
    number: int
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None
    http_status: int | None
    message: str | None
    response_excerpt: str | None
    dispatcher: str | None
    manual: bool
    #: Whether it used one of the row's attempts (an outage or a first interruption does not).
    counted: bool = True


def attempts_of(session: Session, writeback_id: int) -> list[AttemptRow]:
    return [
        AttemptRow(
            a.number,
            a.started_at,
            a.finished_at,
            a.outcome,
            a.http_status,
            a.message,
            a.response_excerpt,
            a.dispatcher,
            a.manual,
            a.counted,
        )
        for a in session.scalars(
            select(Attempt).where(Attempt.writeback_id == writeback_id).order_by(Attempt.number)
        )
    ]


@dataclass(frozen=True, slots=True)
class AuditRow:
    at: datetime
    actor: str
    action: str
    row_count: int
    filter: Mapping[str, Any] | None
    detail: Mapping[str, Any] | None


def audit_of(session: Session, writeback_id: int) -> list[AuditRow]:
    query = (
        select(AuditEvent)
        .join(AuditEventRow, AuditEventRow.event_id == AuditEvent.id)
        .where(AuditEventRow.writeback_id == writeback_id)
        .order_by(AuditEvent.at, AuditEvent.id)
    )
    return [
        AuditRow(e.at, e.actor, e.action, e.row_count, e.filter, e.detail) for e in session.scalars(query)
    ]


SortField = Literal[
    "created_at",
    "ref",
    "kind",
    "email",
    "master_customer_id",
    "account",
    "status",
    "attempts",
    "sent_at",
    "scheduled_for",
    "id",
]


def _sort_columns(sort: SortField) -> tuple[ColumnElement[Any], ...]:
    """The columns a sort orders by, each backed by an index ending in id for keyset paging."""
    return {
        "created_at": (W.created_at, W.id),
        "ref": (W.ref,),
        "kind": (W.kind, W.created_at, W.id),
        "email": (func.lower(W.email), W.id),
        "master_customer_id": (W.master_customer_id, W.id),
        "account": (W.account, W.created_at, W.id),
        "status": (W.status, W.created_at, W.id),
        "attempts": (W.attempts, W.id),
        "sent_at": (W.sent_at, W.id),
        "scheduled_for": (W.scheduled_for, W.id),
        "id": (W.id,),
    }[sort]


#: Sorts whose first column may be NULL; NULLs come last in both directions, on both backends.
NULLABLE_SORTS = frozenset({"email", "master_customer_id", "sent_at", "scheduled_for"})

PREFIX_END = "\U0010ffff"


def escape_like(text: str, escape: str = "\\") -> str:
    """``text`` for a LIKE pattern, with its own % and _ taken literally."""
    return text.replace(escape, escape * 2).replace("%", escape + "%").replace("_", escape + "_")


@dataclass(frozen=True)
class WritebackFilter:
    """What the Writeback List and ``list`` show; every part is applied in SQL."""

    statuses: frozenset[Status] = frozenset()
    kinds: frozenset[Kind] = frozenset()
    accounts: frozenset[str] = frozenset()
    created_from: datetime | None = None
    created_to: datetime | None = None
    #: Matches the start of the email, reference or constituent id, or any part of a mailing's name.
    text: str | None = None
    retried: bool = False
    #: Processing rows whose lease ran out before this time (their dispatcher stopped).
    stuck_before: datetime | None = None
    retry_available: bool = False
    mailing_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.statuses:
            data["statuses"] = sorted(self.statuses)
        if self.kinds:
            data["kinds"] = sorted(self.kinds)
        if self.accounts:
            data["accounts"] = sorted(self.accounts)
        for name in ("created_from", "created_to", "stuck_before"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value.isoformat()
        if self.text:
            data["text"] = self.text
        if self.retried:
            data["retried"] = True
        if self.retry_available:
            data["retry_available"] = True
        if self.mailing_id is not None:
            data["mailing_id"] = self.mailing_id
        return data

    def conditions(self, *, include_status: bool = True) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if include_status and self.statuses:
            where.append(W.status.in_(sorted(s.value for s in self.statuses)))
        if self.kinds:
            where.append(W.kind.in_(sorted(k.value for k in self.kinds)))
        if self.accounts:
            where.append(W.account.in_(sorted(self.accounts)))
        if self.created_from is not None:
            where.append(W.created_at >= self.created_from)
        if self.created_to is not None:
            where.append(W.created_at < self.created_to)
        if self.retried:
            where.append(W.attempts > 1)
        if self.stuck_before is not None:
            # The holder's lease, as the holder set it, ran out: it stopped without finishing.
            where.append(and_(W.status == Status.PROCESSING.value, W.lease_expires_at < self.stuck_before))
        if self.retry_available:
            where.append(and_(W.status == Status.ERROR.value, W.attempts >= W.max_attempts))
        if self.mailing_id is not None:
            where.append(W.mailing_id == self.mailing_id)
        text = (self.text or "").strip()
        if text:
            where.append(_text_condition(text))
        return where


def _prefix(column: ColumnElement[Any], prefix: str) -> ColumnElement[bool]:
    # A range rather than LIKE: it uses the index on both backends, and % or _ mean themselves.
    return and_(column >= prefix, column < prefix + PREFIX_END)


def _text_condition(text: str) -> ColumnElement[bool]:
    mailings = select(Mailing.id).where(
        func.lower(Mailing.name).like("%" + escape_like(text.lower()) + "%", escape="\\")
    )
    conditions = [
        _prefix(func.lower(W.email), text.lower()),
        _prefix(W.ref, normalize_ref(text)),
        _prefix(W.master_customer_id, text),
        W.mailing_id.in_(mailings.scalar_subquery()),
    ]
    ref = normalize_ref(text)
    if ref.startswith(REF_PREFIX) and len(ref) > len(REF_PREFIX):
        # A recipient's reference, as support copies it from an activity in CRM360.
        carriers = select(Delivery.writeback_id).where(_prefix(_D.c.ref, ref))
        conditions.append(W.id.in_(carriers.scalar_subquery()))
    return or_(*conditions)


Cursor = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[WritebackRow]
    #: Where the next page starts, or None at the end.
    next_cursor: Cursor | None


def _cursor_of(row: WritebackRow, sort: SortField) -> Cursor:
    def value(column: str) -> Any:
        if column == "email":
            return row.email.lower() if row.email is not None else None
        return getattr(row, column)

    names = {
        "created_at": ("created_at", "id"),
        "ref": ("ref",),
        "kind": ("kind", "created_at", "id"),
        "email": ("email", "id"),
        "master_customer_id": ("master_customer_id", "id"),
        "account": ("account", "created_at", "id"),
        "status": ("status", "created_at", "id"),
        "attempts": ("attempts", "id"),
        "sent_at": ("sent_at", "id"),
        "scheduled_for": ("scheduled_for", "id"),
        "id": ("id",),
    }[sort]
    return tuple(v.value if isinstance(v, (Kind, Status)) else v for v in (value(n) for n in names))


def list_page(
    session: Session,
    flt: WritebackFilter,
    *,
    sort: SortField = "created_at",
    descending: bool = True,
    after: Cursor | None = None,
    limit: int = 100,
) -> Page:
    """One page of the filtered list, continuing after ``after``: keyset paging, never OFFSET."""
    columns = _sort_columns(sort)
    base = select(*ROW_COLUMNS).where(*flt.conditions())
    rows: list[WritebackRow] = []
    nullable = sort in NULLABLE_SORTS
    in_null_part = after is not None and nullable and after[0] is None

    if not in_null_part:
        query = base
        if nullable:
            query = query.where(columns[0].is_not(None))
        if after is not None:
            key, bound = tuple_(*columns), tuple_(*after)
            query = query.where(key < bound if descending else key > bound)
        query = _ordered(query, columns, descending).limit(limit + 1)
        rows = [_row(r) for r in session.execute(query)]
    if nullable and len(rows) <= limit:
        # The rows without a value follow the others, ordered by id.
        query = base.where(columns[0].is_(None))
        if in_null_part and after is not None:
            query = query.where(W.id < after[-1] if descending else W.id > after[-1])
        query = query.order_by(W.id.desc() if descending else W.id).limit(limit + 1 - len(rows))
        rows.extend(_row(r) for r in session.execute(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, _cursor_of(rows[-1], sort) if more and rows else None)


def _ordered(query: Select[Any], columns: Sequence[ColumnElement[Any]], descending: bool) -> Select[Any]:
    return query.order_by(*(c.desc() if descending else c.asc() for c in columns))


def iter_rows(
    session: Session,
    flt: WritebackFilter,
    *,
    sort: SortField = "created_at",
    descending: bool = True,
    page_size: int = 1000,
    limit: int | None = None,
) -> Iterator[WritebackRow]:
    """Every row of the filter in order, a page at a time, so an export never holds them all."""
    after: Cursor | None = None
    given = 0
    while True:
        size = page_size if limit is None else min(page_size, limit - given)
        if size <= 0:
            return
        page = list_page(session, flt, sort=sort, descending=descending, after=after, limit=size)
        yield from page.rows
        given += len(page.rows)
        if page.next_cursor is None:
            return
        after = page.next_cursor


def list_accounts(session: Session) -> list[str]:
    """Every Informz account that has writebacks or mailings, for the account filter."""
    accounts = set(session.scalars(select(W.account).distinct()))
    accounts.update(session.scalars(select(Mailing.account).distinct()))
    return sorted(accounts)


def count_by_status(session: Session, flt: WritebackFilter | None = None) -> dict[Status, int]:
    """Rows per status under a filter (its own status choice left out, so every status has a count)."""
    where = flt.conditions(include_status=False) if flt else []
    counts = dict.fromkeys(Status, 0)
    for status, n in session.execute(select(W.status, func.count()).where(*where).group_by(W.status)):
        counts[Status(status)] = n
    return counts


def mailing_recipient_counts(session: Session, mailing_id: int) -> tuple[int, int]:
    """(recipients, recipients known in Personify360) of a mailing."""
    total, remote = session.execute(
        select(
            func.count(),
            func.count(MailingRecipient.master_customer_id),
        ).where(MailingRecipient.mailing_id == mailing_id)
    ).one()
    return int(total), int(remote)


# --- account-wide settings -----------------------------------------------------------------------

#: The account name under which settings for every account are kept.
ALL_ACCOUNTS = "*"
WRITEBACK_ENABLED = "writeback_enabled"
#: Days after a mailing is sent at which its mailing activity goes out by itself; absent: never.
AUTO_MAILING_ACTIVITY_DAYS = "auto_mailing_activity_days"


def get_setting(session: Session, key: str, *, account: str = ALL_ACCOUNTS, default: Any = None) -> Any:
    value = session.execute(
        select(Setting.value).where(Setting.account == account, Setting.key == key)
    ).scalar_one_or_none()
    return default if value is None else value


def set_setting(
    session: Session,
    key: str,
    value: Any,
    *,
    account: str = ALL_ACCOUNTS,
    actor: str,
    now: datetime | None = None,
) -> None:
    """Change an account-wide setting; every change is audited with the old and new value."""
    now = now or utcnow()
    old = get_setting(session, key, account=account)
    row = session.get(Setting, (account, key))
    if row is None:
        session.add(Setting(account=account, key=key, value=value, updated_at=now, updated_by=actor))
    else:
        row.value, row.updated_at, row.updated_by = value, now, actor
    session.flush()
    record_audit(
        session,
        actor=actor,
        action="setting",
        rows=[],
        now=now,
        detail={"account": account, "key": key, "from": old, "to": value},
    )


def writeback_enabled(session: Session, account: str = ALL_ACCOUNTS) -> bool:
    """The feature switch: off for all accounts, or off for this one."""
    if get_setting(session, WRITEBACK_ENABLED, default=True) is False:
        return False
    return (
        account == ALL_ACCOUNTS
        or get_setting(session, WRITEBACK_ENABLED, account=account, default=True) is not False
    )


def disabled_accounts(session: Session) -> set[str]:
    """Accounts switched off one by one; their writebacks queue up but are not sent."""
    switches = session.scalars(
        select(Setting).where(Setting.key == WRITEBACK_ENABLED, Setting.account != ALL_ACCOUNTS)
    )
    return {s.account for s in switches if s.value is False}


# --- mailings ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MailingRow:
    """A mailing as staff choose it for mailing activity."""

    id: int
    account: str
    name: str
    sent_at: datetime | None
    recipients: int
    remote_recipients: int
    #: The mailing's mailing-activity writeback, if it has one.
    activity_id: int | None
    activity_ref: str | None
    activity_status: Status | None
    scheduled_for: datetime | None


def list_mailings(session: Session, *, text: str | None = None, limit: int = 200) -> list[MailingRow]:
    """Mailings, most recently sent first, whose name contains ``text`` (any case, taken literally)."""
    query = select(Mailing.id, Mailing.account, Mailing.name, Mailing.sent_at)
    if text and text.strip():
        pattern = "%" + escape_like(text.strip().lower()) + "%"
        query = query.where(func.lower(Mailing.name).like(pattern, escape="\\"))
    mailings = session.execute(
        query.order_by(Mailing.sent_at.desc().nulls_last(), Mailing.id.desc()).limit(limit)
    ).all()
    ids = [m.id for m in mailings]
    counts: dict[int, tuple[int, int]] = {}
    activity: dict[int, Any] = {}
    for batch in _chunks(ids):
        for mid, total, remote in session.execute(
            select(
                MailingRecipient.mailing_id,
                func.count(),
                func.count(MailingRecipient.master_customer_id),
            )
            .where(MailingRecipient.mailing_id.in_(batch))
            .group_by(MailingRecipient.mailing_id)
        ):
            counts[mid] = (int(total), int(remote))
        for r in session.execute(
            select(W.id, W.ref, W.status, W.scheduled_for, W.mailing_id)
            .where(W.mailing_id.in_(batch), W.kind == Kind.MAILING_ACTIVITY.value)
            .order_by(W.id)
        ):
            activity[r.mailing_id] = r
    rows = []
    for m in mailings:
        total, remote = counts.get(m.id, (0, 0))
        a = activity.get(m.id)
        rows.append(
            MailingRow(
                id=m.id,
                account=m.account,
                name=m.name,
                sent_at=m.sent_at,
                recipients=total,
                remote_recipients=remote,
                activity_id=a.id if a else None,
                activity_ref=a.ref if a else None,
                activity_status=Status(a.status) if a else None,
                scheduled_for=a.scheduled_for if a else None,
            )
        )
    return rows


# --- dispatcher helpers: counting, constituents, mailing fan-out, automatic scheduling -----------


def count_eligible(
    session: Session, run_started_at: datetime, skip_accounts: Iterable[str] = (), settle_seconds: float = 0
) -> int:
    """How many rows a run starting now would claim (for progress: "remaining")."""
    query = select(func.count()).where(
        W.status.in_([s.value for s in OPEN_STATUSES]),
        eligible_condition(run_started_at, timedelta(seconds=settle_seconds)),
    )
    skipped = sorted(set(skip_accounts))
    if skipped:
        query = query.where(W.account.not_in(skipped))
    return int(session.execute(query).scalar_one())


def store_constituents(session: Session, found: Sequence[tuple[int, str, int]]) -> None:
    """Keep constituents found by email on their rows (id, master, sub), so support sees who it went to."""
    # An id from Personify360 that the schema cannot hold is not kept: it is for information only.
    usable = [(i, m, s) for i, m, s in found if _fits(m, CUSTOMER_ID_LIMIT) and 0 <= s < 2**31]
    if usable:
        session.connection().execute(
            update(_T)
            .where(_T.c.id == bindparam("wid"), _T.c.master_customer_id.is_(None))
            .values(master_customer_id=bindparam("master"), sub_customer_id=bindparam("sub")),
            [{"wid": i, "master": m, "sub": s} for i, m, s in usable],
        )


@dataclass(frozen=True, slots=True)
class RecipientDelivery:
    """One recipient of a mailing that still needs its activity."""

    delivery_id: int
    recipient_id: int
    #: The idempotency key that ends this recipient's activity text: theirs alone, for good.
    ref: str
    email: str
    master_customer_id: str
    sub_customer_id: int
    uncertain: bool
    sent_at: datetime | None
    opened_at: datetime | None
    clicks: tuple[tuple[str, datetime], ...]
    bounced_at: datetime | None
    bounce_reason: str | None
    blocked: bool
    #: How many activities carrying ``ref`` under this constituent belong to others before this one.
    #: Always 0 with a recipient's own reference; more only for deliveries carried over from the
    #: previous version, which ended every recipient's activity with the row's reference: then one
    #: constituent (a household) may have several recipients, and an activity proves only one of them.
    rank: int = 0


@dataclass(frozen=True, slots=True)
class FanOut:
    mailing_name: str
    remote_recipients: int
    already_delivered: int
    pending: list[RecipientDelivery]


def _clicks(raw: Any) -> tuple[tuple[str, datetime], ...]:
    out: list[tuple[str, datetime]] = []
    for click in raw or []:
        try:
            when = datetime.fromisoformat(str(click["at"]).replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            out.append((str(click["url"]), when))
        except (KeyError, TypeError, ValueError):
            continue  # a malformed click is dropped, not a reason to fail the whole mailing
    return tuple(out)


#: Characters of a recipient's reference after ``WB-``: longer than a writeback's, so never the same.
DELIVERY_REF_LENGTH = 12


def new_delivery_refs(session: Session, count: int) -> list[str]:
    """``count`` fresh recipient references that no delivery uses yet."""
    refs: list[str] = []
    while len(refs) < count:
        wanted = count - len(refs)
        fresh = list(dict.fromkeys(new_ref(DELIVERY_REF_LENGTH) for _ in range(wanted)))
        taken: set[str] = set()
        for start in range(0, len(fresh), CHUNK):
            batch = fresh[start : start + CHUNK]
            taken.update(session.scalars(select(Delivery.ref).where(Delivery.ref.in_(batch))))
        refs.extend(r for r in fresh if r not in taken and r not in refs)
    return refs[:count]


def prepare_deliveries(session: Session, writeback_id: int, mailing_id: int, *, now: datetime) -> FanOut:
    """The mailing's recipients still without their activity, now carried by this row.

    There is one delivery per recipient of the mailing, whichever queue row made it: a retry, a new
    row after a cancelled one, or another dispatcher after a crash all see what already arrived, and
    send only the rest. Only recipients known in Personify360 get an activity. The caller holds the
    row's lease, and the database lets a mailing have only one active row, so nobody else sends these.
    """
    mailing = session.get(Mailing, mailing_id)
    name = mailing.name if mailing is not None else f"mailing {mailing_id}"
    remote = select(MailingRecipient.id).where(
        MailingRecipient.mailing_id == mailing_id, MailingRecipient.master_customer_id.is_not(None)
    )
    known = select(Delivery.recipient_id).join(MailingRecipient, MailingRecipient.id == Delivery.recipient_id)
    known = known.where(MailingRecipient.mailing_id == mailing_id)
    missing = session.scalars(
        remote.where(MailingRecipient.id.not_in(known)).order_by(MailingRecipient.id)
    ).all()
    if missing:
        refs = new_delivery_refs(session, len(missing))
        session.execute(
            insert(Delivery),
            [
                {
                    "writeback_id": writeback_id,
                    "recipient_id": rid,
                    "ref": ref,
                    "status": "pending",
                    "attempts": 0,
                    "uncertain": False,
                    "updated_at": now,
                }
                for rid, ref in zip(missing, refs, strict=True)
            ],
        )
    of_mailing = select(MailingRecipient.id).where(MailingRecipient.mailing_id == mailing_id)
    # The unfinished ones are this row's to send now.
    session.execute(
        update(Delivery)
        .where(
            Delivery.recipient_id.in_(of_mailing.scalar_subquery()),
            Delivery.status != "sent",
            Delivery.writeback_id != writeback_id,
        )
        .values(writeback_id=writeback_id, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(
        select(Delivery, MailingRecipient)
        .join(MailingRecipient, MailingRecipient.id == Delivery.recipient_id)
        .where(MailingRecipient.mailing_id == mailing_id)
        .order_by(Delivery.id)
    ).all()
    delivered = sum(1 for d, _ in rows if d.status == "sent")
    # The rank of each unfinished delivery among those sharing a constituent and a reference.
    sent_per_key: dict[tuple[str | None, int, str], int] = {}
    for d, r in rows:
        if d.status == "sent":
            key = (r.master_customer_id, r.sub_customer_id or 0, d.ref)
            sent_per_key[key] = sent_per_key.get(key, 0) + 1
    ranks: dict[int, int] = {}
    for d, r in rows:
        if d.status != "sent":
            key = (r.master_customer_id, r.sub_customer_id or 0, d.ref)
            ranks[d.id] = sent_per_key.get(key, 0)
            sent_per_key[key] = ranks[d.id] + 1
    pending = [
        RecipientDelivery(
            delivery_id=d.id,
            recipient_id=r.id,
            ref=d.ref,
            email=r.email,
            master_customer_id=r.master_customer_id,
            sub_customer_id=r.sub_customer_id or 0,
            uncertain=d.uncertain,
            sent_at=r.sent_at,
            opened_at=r.opened_at,
            clicks=_clicks(r.clicks),
            bounced_at=r.bounced_at,
            bounce_reason=r.bounce_reason,
            blocked=r.blocked,
            rank=ranks[d.id],
        )
        for d, r in rows
        if d.status != "sent" and r.master_customer_id is not None
    ]
    return FanOut(name, len(rows), delivered, pending)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """How one recipient's activity went, for :func:`record_deliveries`."""

    delivery_id: int
    #: The mailing-activity row that sent it, and the lease it sent it under.
    writeback_id: int
    token: int
    sent: bool
    at: datetime
    activity_id: str | None = None
    error: str | None = None
    may_have_arrived: bool = False


_D = cast(Table, Delivery.__table__)


def record_deliveries(session: Session, results: Sequence[DeliveryResult]) -> set[int]:
    """Record recipients' outcomes in two statements, however large the mailing.

    Only results sent under a lease that is still held count: a dispatcher that lost its row (it slept,
    its lease ran out, another took over) must not write over what the next holder found. A recipient
    already recorded as sent is never turned back into an error. Returns the delivery ids recorded.
    """
    if not results:
        return set()
    held = held_leases(session, {r.writeback_id: r.token for r in results})
    mine = [r for r in results if r.writeback_id in held]
    conn = session.connection()
    sent = [r for r in mine if r.sent]
    failed = [r for r in mine if not r.sent]
    if sent:
        conn.execute(
            update(_D)
            .where(_D.c.id == bindparam("did"))
            .values(
                attempts=_D.c.attempts + 1,
                updated_at=bindparam("at"),
                status="sent",
                sent_at=bindparam("at"),
                activity_id=bindparam("activity"),
                last_error=None,
                uncertain=False,
            ),
            [
                {
                    "did": r.delivery_id,
                    "at": r.at,
                    "activity": r.activity_id if _fits(r.activity_id, ACTIVITY_ID_LIMIT) else None,
                }
                for r in sent
            ],
        )
    if failed:
        conn.execute(
            update(_D)
            .where(_D.c.id == bindparam("did"), _D.c.status != "sent")
            .values(
                attempts=_D.c.attempts + 1,
                updated_at=bindparam("at"),
                status="error",
                last_error=bindparam("error"),
                uncertain=or_(_D.c.uncertain, bindparam("mha", type_=Boolean)),
            ),
            [
                {
                    "did": r.delivery_id,
                    "at": r.at,
                    "error": _cut(r.error, MESSAGE_LIMIT),
                    "mha": r.may_have_arrived,
                }
                for r in failed
            ],
        )
    return {r.delivery_id for r in mine}


def auto_schedule_mailings(session: Session, *, now: datetime, actor: str) -> list[int]:
    """Scheduled mailing activity for mailings sent since automatic scheduling was switched on.

    The account setting says how many days after a mailing is sent its activity goes out; mailings
    created before the setting was turned on are left alone, so switching it on never floods the queue.
    A mailing that has mailing activity in any state — Cancelled included — is never given another:
    what staff cancelled stays cancelled.
    """
    settings = session.scalars(select(Setting).where(Setting.key == AUTO_MAILING_ACTIVITY_DAYS)).all()
    by_account = {
        s.account: s for s in settings if isinstance(s.value, int) and not isinstance(s.value, bool)
    }
    if not by_account:
        return []
    has_activity = select(W.mailing_id).where(
        W.kind == Kind.MAILING_ACTIVITY.value, W.mailing_id.is_not(None)
    )
    candidates = session.execute(
        select(Mailing.id, Mailing.account, Mailing.name, Mailing.sent_at, Mailing.created_at).where(
            Mailing.sent_at.is_not(None), Mailing.id.not_in(has_activity)
        )
    ).all()
    created: list[int] = []
    for m in candidates:
        setting = by_account.get(m.account) or by_account.get(ALL_ACCOUNTS)
        if setting is None or m.created_at < setting.updated_at:
            continue
        due = m.sent_at + timedelta(days=setting.value)
        item = WritebackInput(
            kind=Kind.MAILING_ACTIVITY,
            account=m.account,
            occurred_at=m.sent_at,
            mailing_id=m.id,
            scheduled_for=max(due, now),
            payload={"mailing_name": m.name},
        )
        try:
            # Another dispatcher or a person may schedule the same mailing at this moment; the
            # database keeps one, and this one is skipped.
            with session.begin_nested():
                row = enqueue(session, item, now=now)
        except IntegrityError:
            continue
        created.append(row.id)
        record_audit(
            session,
            actor=actor,
            action="auto_schedule",
            rows=[(row.id, row.ref)],
            now=now,
            detail={
                "mailing_id": m.id,
                "days_after_sent": setting.value,
                "scheduled_for": item.scheduled_for.isoformat() if item.scheduled_for else None,
            },
        )
    return created


# --- Personify360 as a whole ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Health:
    """What dispatchers last learnt about one Personify360 service (see :class:`RemoteHealth`)."""

    service: str
    #: ok, outage or auth.
    state: str
    since: datetime | None
    checked_at: datetime
    http_status: int | None
    message: str | None
    not_before: datetime | None
    checked_by: str | None

    @property
    def ok(self) -> bool:
        return self.state == "ok"


def get_health(session: Session, service: str) -> Health | None:
    row = session.get(RemoteHealth, service)
    if row is None:
        return None
    return Health(
        row.service,
        row.state,
        row.since,
        row.checked_at,
        row.http_status,
        row.message,
        row.not_before,
        row.checked_by,
    )


def set_health(
    session: Session,
    service: str,
    *,
    state: str,
    now: datetime,
    by: str,
    http_status: int | None = None,
    message: str | None = None,
    not_before: datetime | None = None,
    learnt_at: datetime | None = None,
) -> Health:
    """Record what a dispatcher just learnt; an outage keeps the time it began.

    Several dispatchers may learn it at the same moment: the row is made if missing (a second insert
    is ignored by the database), then locked and updated, so none of them fails on the other. "ok"
    learnt from a request that began at ``learnt_at`` does not wipe out what another dispatcher
    recorded after that, nor a Retry-After still running: the news that is worse and newer stands.
    """
    dialect = session.get_bind().dialect.name
    make = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        make(RemoteHealth)
        .values(service=service, state=state, since=None, checked_at=now)
        .on_conflict_do_nothing(index_elements=["service"])
    )
    row = session.get(RemoteHealth, service, with_for_update=True, populate_existing=True)
    assert row is not None
    if state == "ok" and row.state != "ok":
        newer = learnt_at is not None and row.checked_at > learnt_at
        waiting = row.not_before is not None and row.not_before > now
        if newer or waiting:
            health = get_health(session, service)
            assert health is not None
            return health
    if state == "ok":
        row.since = None
    elif row.state != state or row.since is None:
        row.since = now
    row.state = state
    row.checked_at = now
    row.checked_by = by
    row.http_status = http_status
    row.message = _cut(message, MESSAGE_LIMIT)
    row.not_before = not_before
    session.flush()
    health = get_health(session, service)
    assert health is not None
    return health
