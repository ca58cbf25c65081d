"""Mailing activity fanned out to recipients: one delivery, with its own stable reference, per mailing
and recipient, so a recipient's activity is written at most once whatever happens to the queue rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from writeback_console.domain import DeliveryStatus, new_ref
from writeback_console.store.lifecycle import held_leases
from writeback_console.store.models import Delivery, Mailing, MailingRecipient
from writeback_console.store.rows import ACTIVITY_ID_LIMIT, CHUNK, DELIVERY_TABLE, MESSAGE_LIMIT, cut, fits


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
                    "status": DeliveryStatus.PENDING.value,
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
            Delivery.status != DeliveryStatus.SENT.value,
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
    delivered = sum(1 for d, _ in rows if d.status == DeliveryStatus.SENT)
    # The rank of each unfinished delivery among those sharing a constituent and a reference.
    sent_per_key: dict[tuple[str | None, int, str], int] = {}
    for d, r in rows:
        if d.status == DeliveryStatus.SENT:
            key = (r.master_customer_id, r.sub_customer_id or 0, d.ref)
            sent_per_key[key] = sent_per_key.get(key, 0) + 1
    ranks: dict[int, int] = {}
    for d, r in rows:
        if d.status != DeliveryStatus.SENT:
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
        if d.status != DeliveryStatus.SENT and r.master_customer_id is not None
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
