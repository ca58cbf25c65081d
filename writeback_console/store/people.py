"""The queue as one person sees it: the rows for their email, and the mailing activity of every mailing
they received, with their own delivery of it (which carries the reference in their CRM360 activity)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from writeback_console.domain import DeliveryStatus, Kind, Status
from writeback_console.store.models import Delivery, Mailing, MailingRecipient
from writeback_console.store.rows import ROW_COLUMNS, W, WritebackRow, row_from

#: Queue rows shown for one person; someone with more has a problem the Writeback List is better at.
MAX_PERSON_ROWS = 1000


@dataclass(frozen=True, slots=True)
class RecipientDelivery:
    """The person's own part of a mailing-activity row: their recipient row and its delivery, if any."""

    recipient_id: int
    mailing_name: str
    #: Whether the recipient was known to Personify360 when the mailing was recorded; one who was not
    #: gets no activity at all.
    known: bool
    #: None until the row was sent once (its recipients fan out into deliveries when it is).
    ref: str | None
    status: DeliveryStatus | None
    sent_at: datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class PersonRow:
    """One queue row of the person: theirs by email, or a mailing's whose recipient they were."""

    row: WritebackRow
    #: Set when the row is mailing activity reached through the person's recipient row.
    recipient: RecipientDelivery | None = None

    @property
    def refs(self) -> tuple[str, ...]:
        """The references a CRM360 activity of this person may end with for this row."""
        if self.recipient is not None and self.recipient.ref:
            return (self.row.ref, self.recipient.ref)
        return (self.row.ref,)


def rows_for_email(session: Session, email: str, *, limit: int = MAX_PERSON_ROWS) -> list[PersonRow]:
    """The person's queue rows, newest first: those for ``email`` (any case), and the mailing-activity
    rows of the mailings that have ``email`` among their recipients, each with that recipient's delivery.
    """
    wanted = email.strip().lower()
    if not wanted:
        return []
    found: dict[int, PersonRow] = {}
    own = (
        select(*ROW_COLUMNS)
        .where(func.lower(W.email) == wanted)
        .order_by(W.created_at.desc(), W.id.desc())
        .limit(limit)
    )
    for r in session.execute(own):
        row = row_from(r)
        found[row.id] = PersonRow(row)

    recipients = session.execute(
        select(
            MailingRecipient.id,
            MailingRecipient.mailing_id,
            Mailing.name,
            MailingRecipient.master_customer_id.is_not(None),
        )
        .join(Mailing, Mailing.id == MailingRecipient.mailing_id)
        .where(func.lower(MailingRecipient.email) == wanted)
        .order_by(MailingRecipient.id.desc())
        .limit(limit)
    ).all()
    if recipients:
        by_mailing = {
            mailing_id: (recipient_id, name, bool(known))
            for recipient_id, mailing_id, name, known in recipients
        }
        deliveries = {
            d.recipient_id: d
            for d in session.scalars(
                select(Delivery).where(Delivery.recipient_id.in_([r for r, _, _, _ in recipients]))
            )
        }
        carriers = (
            select(*ROW_COLUMNS)
            .where(W.kind == Kind.MAILING_ACTIVITY.value, W.mailing_id.in_(list(by_mailing)))
            .order_by(W.created_at.desc(), W.id.desc())
            .limit(limit)
        )
        for r in session.execute(carriers):
            row = row_from(r)
            assert row.mailing_id is not None
            recipient_id, name, known = by_mailing[row.mailing_id]
            delivery = deliveries.get(recipient_id)
            # A recipient has one delivery for good, worked on by the mailing's current row; an older
            # (cancelled) row of the same mailing shows that the person was among its recipients.
            if delivery is not None and delivery.writeback_id != row.id:
                delivery = None
            found[row.id] = PersonRow(
                row,
                RecipientDelivery(
                    recipient_id=recipient_id,
                    mailing_name=name,
                    known=known,
                    ref=delivery.ref if delivery else None,
                    status=DeliveryStatus(delivery.status) if delivery else None,
                    sent_at=delivery.sent_at if delivery else None,
                    last_error=delivery.last_error if delivery else None,
                ),
            )
    ordered = sorted(found.values(), key=lambda p: (p.row.created_at, p.row.id), reverse=True)
    return ordered[:limit]


#: Row statuses in which a recipient without a delivery may still get their activity.
_STILL_TO_GO = frozenset({Status.NEW, Status.SCHEDULED, Status.PROCESSING, Status.ERROR})


def recipient_outcome(person_row: PersonRow, when: Callable[[datetime], str]) -> str:
    """What became of the person's activity for a mailing's row, in words, with times by ``when``.

    A delivery says it outright. Without one (mailings sent before deliveries were kept per recipient
    have none), the row says it: Sent only once every remote recipient's activity arrived, so theirs did
    too; a recipient not known to Personify360 never gets one, and a final row sends nothing more.
    """
    recipient = person_row.recipient
    if recipient is None:
        return ""
    name, row = recipient.mailing_name, person_row.row
    if recipient.ref is not None and recipient.status is not None:
        sent = f" {when(recipient.sent_at)}" if recipient.sent_at else ""
        return f"{name}: {recipient.ref} {recipient.status.value}{sent}"
    if not recipient.known:
        return f"{name}: not sent, not known to Personify360 when the mailing was recorded"
    if row.status is Status.SENT:
        sent = f" {when(row.sent_at)}" if row.sent_at else ""
        return f"{name}: sent{sent}"
    if row.status is Status.NO_REMOTE_RECIPIENTS:
        return f"{name}: not sent, no recipient was known to Personify360"
    if row.status in _STILL_TO_GO:
        return f"{name}: not sent yet"
    return f"{name}: not sent, the row is {row.status.label.lower()}"
