"""Mailing activity fanned out to recipients: one delivery, with its own stable reference, per mailing
and recipient, so a recipient's activity is written at most once whatever happens to the queue rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from writeback_console.domain import DEFAULT_CHUNK_SIZE, DeliveryStatus, Kind, Status, new_ref
from writeback_console.store.lifecycle import (
    Claimed,
    claimed_row,
    database_now,
    fenced,
    held_leases,
    one_of,
    pair_chunks,
)
from writeback_console.store.models import Delivery, Mailing, MailingRecipient, Writeback
from writeback_console.store.progress import progress_of_mailings
from writeback_console.store.rows import (
    ACTIVITY_ID_LIMIT,
    CHUNK,
    DELIVERY_TABLE,
    MESSAGE_LIMIT,
    W,
    chunks,
    cut,
    fits,
)

D = DELIVERY_TABLE.c


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
    #: Recipients still without their activity: this row's to send now, in chunks.
    pending: int


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
    refs: dict[str, None] = {}  # in the order made; a dict, as a mailing may have 100,000 recipients
    while len(refs) < count:
        wanted = count - len(refs)
        made = dict.fromkeys(new_ref(DELIVERY_REF_LENGTH) for _ in range(wanted))
        fresh = [r for r in made if r not in refs]
        taken: set[str] = set()
        for start in range(0, len(fresh), CHUNK):
            batch = fresh[start : start + CHUNK]
            taken.update(session.scalars(select(Delivery.ref).where(Delivery.ref.in_(batch))))
        refs.update((r, None) for r in fresh if r not in taken)
    return list(refs)[:count]


def prepare_deliveries(session: Session, writeback_id: int, mailing_id: int, *, now: datetime) -> FanOut:
    """Give the mailing's recipients still without their activity to this row, to be sent in chunks.

    There is one delivery per recipient of the mailing, whichever queue row made it: a retry, a new
    row after a cancelled one, or another dispatcher after a crash all see what already arrived, and
    send only the rest. Only recipients known in Personify360 get an activity. The caller holds the
    row's lease, and the database lets a mailing have only one active row, so nobody else sends these
    except by claiming chunks of this row (:func:`claim_chunk`). Every unfinished recipient is pending
    again for this attempt; one left in a chunk whose holder died is uncertain: looked for, not rewritten.
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
                    "status": DeliveryStatus.PENDING.value,
                    "attempts": 0,
                    "uncertain": False,
                    "updated_at": now,
                }
                for rid, ref in zip(missing, refs, strict=True)
            ],
        )
    of_mailing = select(MailingRecipient.id).where(MailingRecipient.mailing_id == mailing_id)
    dead = D.locked_by.is_not(None)
    session.execute(
        update(Delivery)
        .where(
            Delivery.recipient_id.in_(of_mailing.scalar_subquery()),
            D.status != DeliveryStatus.SENT.value,
            # Those just made are as they should be already.
            or_(D.writeback_id != writeback_id, D.status != DeliveryStatus.PENDING.value, dead),
        )
        .values(
            writeback_id=writeback_id,
            status=DeliveryStatus.PENDING.value,
            # SET sees the row as it was: a chunk lease still on it is a dead holder's.
            uncertain=or_(D.uncertain, dead),
            uncertain_since=case((dead, D.lease_expires_at), else_=D.uncertain_since),
            locked_by=None,
            lease_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    counts: dict[str, int] = dict(
        session.execute(
            select(D.status, func.count())
            .select_from(DELIVERY_TABLE.join(MailingRecipient, MailingRecipient.id == D.recipient_id))
            .where(MailingRecipient.mailing_id == mailing_id)
            .group_by(D.status)
        ).all()
    )
    delivered = int(counts.get(DeliveryStatus.SENT.value, 0))
    pending = int(counts.get(DeliveryStatus.PENDING.value, 0))
    return FanOut(name, delivered + pending, delivered, pending)


def _recipients(session: Session, claimed: Sequence[Any]) -> list[RecipientDelivery]:
    """What each claimed delivery's activity is made from, with its rank among those sharing a reference."""
    by_recipient = {
        r.id: r
        for batch in chunks(sorted(d.recipient_id for d in claimed))
        for r in session.scalars(select(MailingRecipient).where(MailingRecipient.id.in_(batch)))
    }
    # References shared by several deliveries were carried over from the previous version (a household
    # under one row reference): the activities found under one are counted out in delivery id order,
    # those already sent first, as the previous version wrote them.
    refs = sorted({d.ref for d in claimed})
    sharing: dict[str, list[tuple[int, str, str | None, int]]] = {}
    for batch in chunks(refs):
        for did, ref, status, master, sub in session.execute(
            select(
                D.id, D.ref, D.status, MailingRecipient.master_customer_id, MailingRecipient.sub_customer_id
            )
            .join(MailingRecipient, MailingRecipient.id == D.recipient_id)
            .where(D.ref.in_(batch))
        ):
            sharing.setdefault(ref, []).append((did, status, master, sub or 0))
    ranks: dict[int, int] = {}
    for ref, shared in sharing.items():
        if len(shared) < 2:
            continue
        per_key: dict[tuple[str | None, int], int] = {}
        for _did, status, master, sub in shared:
            if status == DeliveryStatus.SENT.value:
                per_key[(master, sub)] = per_key.get((master, sub), 0) + 1
        for did, status, master, sub in sorted(shared):
            if status != DeliveryStatus.SENT.value:
                ranks[did] = per_key.get((master, sub), 0)
                per_key[(master, sub)] = ranks[did] + 1
        del ref
    out = []
    for d in sorted(claimed, key=lambda d: d.id):
        r = by_recipient[d.recipient_id]
        if r.master_customer_id is None:
            continue
        out.append(
            RecipientDelivery(
                delivery_id=d.id,
                recipient_id=r.id,
                ref=d.ref,
                email=r.email,
                master_customer_id=r.master_customer_id,
                sub_customer_id=r.sub_customer_id or 0,
                uncertain=bool(d.uncertain),
                sent_at=r.sent_at,
                opened_at=r.opened_at,
                clicks=_clicks(r.clicks),
                bounced_at=r.bounced_at,
                bounce_reason=r.bounce_reason,
                blocked=r.blocked,
                rank=ranks.get(d.id, 0),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Chunk:
    """Recipients of a mailing-activity row one dispatcher now holds a chunk lease on."""

    #: The row, as its claim left it; ``writeback.token`` is the row's fencing token.
    writeback: Claimed
    mailing_name: str
    recipients: list[RecipientDelivery]
    #: delivery id → the chunk's fencing token on it: every write of the holder names it.
    tokens: dict[int, int]
    lease_expires_at: datetime


def _lock_row(session: Session, query: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        # Every transaction on a shared mailing row takes this lock first, and only then its
        # deliveries: a chunk claim never meets the row's settling half-way, and nothing deadlocks.
        query = query.with_for_update()
    return session.execute(query).first()


def _claimable(now: datetime, settle: timedelta) -> ColumnElement[bool]:
    """A pending delivery nobody holds: free and settled, or left in a chunk whose lease ran out a settle
    ago (the holder died; a write it sent may still be landing until then)."""
    return and_(
        D.status == DeliveryStatus.PENDING.value,
        or_(
            and_(D.locked_by.is_(None), or_(D.uncertain_since.is_(None), D.uncertain_since <= now - settle)),
            and_(D.locked_by.is_not(None), D.lease_expires_at < now - settle),
        ),
    )


def _live(now: datetime) -> ColumnElement[bool]:
    return and_(D.locked_by.is_not(None), D.lease_expires_at >= now)


def _extend_row(session: Session, writeback_id: int, expires: datetime, now: datetime) -> None:
    """Every holder of a chunk keeps the row's lease at least as long as its own: the row is recovered
    only once nobody works on it any more. The row counts as changed, so screens that follow changes
    read its progress again at every chunk."""
    session.execute(
        update(Writeback)
        .where(W.id == writeback_id)
        .values(
            lease_expires_at=case((W.lease_expires_at < expires, expires), else_=W.lease_expires_at),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )


def claim_chunk(
    session: Session,
    *,
    dispatcher: str,
    limit: int = DEFAULT_CHUNK_SIZE,
    lease_seconds: float,
    settle_seconds: float = 0,
    now: datetime | None = None,
    writeback: tuple[int, int] | None = None,
    skip_accounts: Iterable[str] = (),
    only: Iterable[int] | None = None,
) -> Chunk | None:
    """Claim up to ``limit`` pending recipients of a Processing mailing-activity row, under a chunk lease.

    ``writeback`` (id, token) takes them from that row under that claim; otherwise from the first row being
    worked that has recipients nobody holds (joining another dispatcher's mailing). The lease runs
    ``lease_seconds`` from the database's clock and carries a new fencing token per delivery; PostgreSQL
    skips deliveries another claim is taking (``FOR UPDATE SKIP LOCKED``), SQLite is serialised by the
    caller's ``BEGIN IMMEDIATE``. A delivery taken from a dead holder's chunk is uncertain: it is looked
    for in Personify360 before it is written.
    """
    now = now or database_now(session)
    settle = timedelta(seconds=settle_seconds)
    expires = now + timedelta(seconds=lease_seconds)
    if writeback is not None:
        rows = select(W.id, W.lease_token).where(fenced([writeback]))
    else:
        waiting = select(D.id).where(D.writeback_id == W.id, _claimable(now, settle)).exists()
        rows = select(W.id, W.lease_token).where(
            W.status == Status.PROCESSING.value, W.kind == Kind.MAILING_ACTIVITY.value, waiting
        )
        skipped = sorted(set(skip_accounts))
        if skipped:
            rows = rows.where(W.account.not_in(skipped))
        if only is not None:
            rows = rows.where(one_of(session, only))
        rows = rows.order_by(W.id).limit(1)
    found = _lock_row(session, rows)
    if found is None:
        return None
    wid, token = int(found.id), int(found.lease_token)
    chosen = (
        select(D.id)
        .where(D.writeback_id == wid, _claimable(now, settle))
        .order_by(D.writeback_id, D.status, D.id)
    ).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        chosen = chosen.with_for_update(skip_locked=True)
    dead = D.locked_by.is_not(None)
    claimed = session.execute(
        update(Delivery)
        .where(D.id.in_(chosen.scalar_subquery()))
        .values(
            locked_by=dispatcher,
            lease_expires_at=expires,
            lease_token=D.lease_token + 1,
            uncertain=or_(D.uncertain, dead),
            uncertain_since=case((dead, D.lease_expires_at), else_=D.uncertain_since),
        )
        .returning(D.id, D.lease_token, D.uncertain, D.ref, D.recipient_id)
        .execution_options(synchronize_session=False)
    ).all()
    if not claimed:
        return None
    _extend_row(session, wid, expires, now)
    r = session.execute(select(Writeback).where(W.id == wid)).scalar_one()
    mailing = session.get(Mailing, r.mailing_id) if r.mailing_id is not None else None
    row = claimed_row(r, token=token, locked_at=r.locked_at, lease_expires_at=r.lease_expires_at)
    name = mailing.name if mailing is not None else f"mailing {r.mailing_id}"
    recipients = _recipients(session, claimed)
    gone = sorted({int(c.id) for c in claimed} - {d.delivery_id for d in recipients})
    if gone:
        # No longer known in Personify360 since the mailing was fanned out: nothing to write it to.
        session.execute(
            update(Delivery)
            .where(D.id.in_(gone))
            .values(
                status=DeliveryStatus.ERROR.value,
                last_error="the recipient is no longer known in Personify360",
                locked_by=None,
                lease_expires_at=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        claimed = [c for c in claimed if int(c.id) not in gone]
        if not claimed:
            return None
    return Chunk(row, name, recipients, {int(c.id): int(c.lease_token) for c in claimed}, expires)


def count_joinable(
    session: Session,
    *,
    now: datetime,
    settle_seconds: float = 0,
    skip_accounts: Iterable[str] = (),
    only: Iterable[int] | None = None,
) -> int:
    """How many mailing-activity rows being worked have recipients a dispatcher could join them by."""
    waiting = select(D.id).where(D.writeback_id == W.id, _claimable(now, timedelta(seconds=settle_seconds)))
    query = select(func.count()).where(
        W.status == Status.PROCESSING.value, W.kind == Kind.MAILING_ACTIVITY.value, waiting.exists()
    )
    skipped = sorted(set(skip_accounts))
    if skipped:
        query = query.where(W.account.not_in(skipped))
    if only is not None:
        query = query.where(one_of(session, only))
    return int(session.execute(query).scalar_one())


def renew_chunks(
    session: Session,
    chunks_held: Mapping[int, tuple[int, Mapping[int, int]]],
    *,
    lease_seconds: float,
    now: datetime | None = None,
) -> set[int]:
    """Extend the chunk leases this holder still has (row id → (row token, delivery id → token)), and the
    rows' leases with them; returns the delivery ids still held. The others it has lost."""
    now = now or database_now(session)
    expires = now + timedelta(seconds=lease_seconds)
    held: set[int] = set()
    for wid, (row_token, tokens) in sorted(chunks_held.items()):
        if _lock_row(session, select(W.id).where(fenced([(wid, row_token)]))) is None:
            continue
        _extend_row(session, wid, expires, now)
        for batch in pair_chunks(tokens):
            held.update(
                session.execute(
                    update(Delivery)
                    .where(_fenced_deliveries(batch))
                    .values(lease_expires_at=expires)
                    .returning(D.id)
                    .execution_options(synchronize_session=False)
                ).scalars()
            )
    return held


def _fenced_deliveries(pairs: Sequence[tuple[int, int]]) -> ColumnElement[bool]:
    """Deliveries still in exactly these chunk leases (id, token): nobody took them back meanwhile."""
    return and_(tuple_(D.id, D.lease_token).in_(list(pairs)), D.locked_by.is_not(None))


@dataclass(frozen=True, slots=True)
class Unsent:
    """A delivery let go without an outcome, for :func:`release_deliveries`."""

    delivery_id: int
    token: int
    at: datetime
    #: A write went out and its fate is unknown (an outage's timeout): looked for before it is sent again.
    may_have_arrived: bool = False


def release_deliveries(session: Session, writeback_id: int, row_token: int, items: Sequence[Unsent]) -> int:
    """Let go of claimed deliveries that got no outcome (never sent, or sent into an outage): pending
    again for whoever claims them next, the doubt kept; returns how many were still this holder's."""
    if not items or _lock_row(session, select(W.id).where(fenced([(writeback_id, row_token)]))) is None:
        return 0
    conn = session.connection()
    done = 0
    for start in range(0, len(items), CHUNK):
        batch = items[start : start + CHUNK]
        result = conn.execute(
            update(DELIVERY_TABLE)
            .where(
                DELIVERY_TABLE.c.id == bindparam("did"),
                DELIVERY_TABLE.c.lease_token == bindparam("tok"),
                DELIVERY_TABLE.c.locked_by.is_not(None),
            )
            .values(
                locked_by=None,
                lease_expires_at=None,
                uncertain=or_(DELIVERY_TABLE.c.uncertain, bindparam("mha", type_=Boolean)),
                uncertain_since=case(
                    (bindparam("mha", type_=Boolean), bindparam("at")),
                    else_=DELIVERY_TABLE.c.uncertain_since,
                ),
            ),
            [{"did": i.delivery_id, "tok": i.token, "mha": i.may_have_arrived, "at": i.at} for i in batch],
        )
        done += max(result.rowcount or 0, 0)
    return done


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """How one recipient's activity went, for :func:`record_deliveries`."""

    delivery_id: int
    #: The mailing-activity row it was sent for, and that row's claim (its fencing token).
    writeback_id: int
    token: int
    sent: bool
    at: datetime
    activity_id: str | None = None
    error: str | None = None
    may_have_arrived: bool = False
    #: The chunk lease it was sent under (the delivery's fencing token).
    chunk_token: int = 0


def record_deliveries(session: Session, results: Sequence[DeliveryResult]) -> set[int]:
    """Record recipients' outcomes in a few statements, however large the mailing, and let go of them.

    Only results sent under a chunk lease that is still held count: a dispatcher that lost its chunk
    (it slept, its lease ran out, another took the recipients back) must not write over what the next
    holder found. A recipient already recorded as sent is never turned back into an error. Returns the
    delivery ids recorded.
    """
    if not results:
        return set()
    held = held_leases(session, {r.writeback_id: r.token for r in results})
    mine = [r for r in results if r.writeback_id in held]
    if not mine:
        return set()
    still: set[int] = set()
    for batch in pair_chunks({r.delivery_id: r.chunk_token for r in mine}):
        still.update(session.scalars(select(D.id).where(_fenced_deliveries(batch))))
    mine = [r for r in mine if r.delivery_id in still]
    conn = session.connection()
    sent = [r for r in mine if r.sent]
    failed = [r for r in mine if not r.sent]
    if sent:
        conn.execute(
            update(DELIVERY_TABLE)
            .where(DELIVERY_TABLE.c.id == bindparam("did"))
            .values(
                attempts=DELIVERY_TABLE.c.attempts + 1,
                updated_at=bindparam("at"),
                status=DeliveryStatus.SENT.value,
                sent_at=bindparam("at"),
                activity_id=bindparam("activity"),
                last_error=None,
                uncertain=False,
                uncertain_since=None,
                locked_by=None,
                lease_expires_at=None,
            ),
            [
                {
                    "did": r.delivery_id,
                    "at": r.at,
                    "activity": r.activity_id if fits(r.activity_id, ACTIVITY_ID_LIMIT) else None,
                }
                for r in sent
            ],
        )
    if failed:
        conn.execute(
            update(DELIVERY_TABLE)
            .where(
                DELIVERY_TABLE.c.id == bindparam("did"), DELIVERY_TABLE.c.status != DeliveryStatus.SENT.value
            )
            .values(
                attempts=DELIVERY_TABLE.c.attempts + 1,
                updated_at=bindparam("at"),
                status=DeliveryStatus.ERROR.value,
                last_error=bindparam("error"),
                uncertain=or_(DELIVERY_TABLE.c.uncertain, bindparam("mha", type_=Boolean)),
                uncertain_since=case(
                    (bindparam("mha", type_=Boolean), bindparam("at")),
                    else_=DELIVERY_TABLE.c.uncertain_since,
                ),
                locked_by=None,
                lease_expires_at=None,
            ),
            [
                {
                    "did": r.delivery_id,
                    "at": r.at,
                    "error": cut(r.error, MESSAGE_LIMIT),
                    "mha": r.may_have_arrived,
                }
                for r in failed
            ],
        )
    return {r.delivery_id for r in mine}


@dataclass(frozen=True, slots=True)
class MailingState:
    """Where a mailing-activity row's recipients are, read under the row's lock."""

    #: Recipients of the row still waiting in this attempt (free, or in a chunk), and those in live chunks.
    pending: int
    live: int
    #: Of them, those a chunk claim could take now.
    claimable: int
    failed: int
    #: The mailing's recipients known in Personify360, and those whose activity arrived (any row's).
    total: int
    arrived: int
    first_error: str | None
    #: A failed recipient's write may have arrived: the row is looked for before it is sent again.
    uncertain_failure: bool


def mailing_state(
    session: Session, writeback_id: int, mailing_id: int, *, now: datetime, settle_seconds: float = 0
) -> MailingState:
    settle = timedelta(seconds=settle_seconds)
    pending, live, claimable = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((_live(now), 1), else_=0)), 0),
            func.coalesce(func.sum(case((_claimable(now, settle), 1), else_=0)), 0),
        ).where(D.writeback_id == writeback_id, D.status == DeliveryStatus.PENDING.value)
    ).one()
    failed, uncertain = session.execute(
        select(func.count(), func.coalesce(func.max(case((D.uncertain, 1), else_=0)), 0)).where(
            D.writeback_id == writeback_id, D.status == DeliveryStatus.ERROR.value
        )
    ).one()
    first_error = session.scalars(
        select(D.last_error)
        .where(D.writeback_id == writeback_id, D.status == DeliveryStatus.ERROR.value)
        .order_by(D.writeback_id, D.status, D.id)
        .limit(1)
    ).first()
    arrived, total = progress_of_mailings(session, [mailing_id]).get(mailing_id, (0, 0))
    return MailingState(
        int(pending), int(live), int(claimable), int(failed), total, arrived, first_error, bool(uncertain)
    )


def lock_mailing_row(session: Session, writeback_id: int, token: int) -> bool:
    """Take the row's lock (PostgreSQL) before deciding its fate; False if that claim is over."""
    return _lock_row(session, select(W.id).where(fenced([(writeback_id, token)]))) is not None
