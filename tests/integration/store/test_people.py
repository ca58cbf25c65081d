"""One person's queue rows: by their email, and the mailing activity of the mailings they received."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import T0, add_mailing, enqueue, item, minutes
from writeback_console.domain import DeliveryStatus, Kind, Status
from writeback_console.store import deliveries, people
from writeback_console.store.engine import write_transaction
from writeback_console.store.models import MailingRecipient, Writeback


def _recipient_email(factory: sessionmaker[Session], mailing_id: int, old: str, new: str) -> None:
    with write_transaction(factory) as session:
        session.execute(
            update(MailingRecipient)
            .where(MailingRecipient.mailing_id == mailing_id, MailingRecipient.email == old)
            .values(email=new)
        )


def test_rows_for_the_email_come_in_any_case_and_no_one_elses(factory: sessionmaker[Session]) -> None:
    mine = enqueue(factory, item(email="ann@example.org"), item(Kind.RESUBSCRIBE, email="ANN@Example.org"))
    enqueue(factory, item(email="ann@example.org.uk"), item(email="bob@example.org"))
    with factory() as session:
        found = people.rows_for_email(session, " Ann@example.ORG ")
    assert sorted(p.row.id for p in found) == sorted(mine)
    assert all(p.recipient is None for p in found)


def test_mailing_activity_is_listed_through_the_persons_recipient_row(factory: sessionmaker[Session]) -> None:
    received = add_mailing(factory, remote=3, name="November News")
    other = add_mailing(factory, remote=2, name="Not for Ann")
    _recipient_email(factory, received, "r1@example.org", "Ann@Example.org")
    (carrier,) = enqueue(factory, item(Kind.MAILING_ACTIVITY, mailing_id=received))
    enqueue(factory, item(Kind.MAILING_ACTIVITY, mailing_id=other))
    (own,) = enqueue(factory, item(email="ann@example.org"), now=T0 + minutes(5))
    with factory() as session:
        before = people.rows_for_email(session, "ann@example.org")
    # Newest first; before the row is sent there is no delivery for the person yet.
    assert [p.row.id for p in before] == [own, carrier]
    recipient = before[1].recipient
    assert recipient is not None and recipient.mailing_name == "November News"
    assert (recipient.ref, recipient.status) == (None, None)
    assert before[1].refs == (before[1].row.ref,)

    with write_transaction(factory) as session:
        deliveries.prepare_deliveries(session, carrier, received, now=T0)
    with factory() as session:
        after = people.rows_for_email(session, "ann@example.org")
    recipient = after[1].recipient
    assert recipient is not None and recipient.status is DeliveryStatus.PENDING
    assert recipient.ref is not None and recipient.ref.startswith("WB-")
    assert recipient.ref != after[1].row.ref
    assert after[1].refs == (after[1].row.ref, recipient.ref)


def test_nobody_has_no_rows(factory: sessionmaker[Session]) -> None:
    add_mailing(factory, remote=2)
    enqueue(factory, item(email="bob@example.org"))
    with factory() as session:
        assert people.rows_for_email(session, "nobody@example.org") == []
        assert people.rows_for_email(session, "  ") == []


def _as_recorded(
    factory: sessionmaker[Session], writeback_id: int, status: Status, sent_at: datetime | None
) -> None:
    """The row as a mailing recorded before deliveries were kept per recipient left it: no delivery."""
    with write_transaction(factory) as session:
        session.execute(
            update(Writeback)
            .where(Writeback.id == writeback_id)
            .values(status=status.value, sent_at=sent_at, scheduled_for=T0, lease_expires_at=T0)
        )


def _outcome(factory: sessionmaker[Session], email: str) -> str:
    with factory() as session:
        (found,) = people.rows_for_email(session, email)
    return people.recipient_outcome(found, lambda t: t.strftime("%Y-%m-%d %H:%M"))


def test_a_sent_rows_recipient_without_a_delivery_was_sent_with_it(factory: sessionmaker[Session]) -> None:
    mailing = add_mailing(factory, remote=2, name="Member Update")
    (carrier,) = enqueue(factory, item(Kind.MAILING_ACTIVITY, mailing_id=mailing))
    _as_recorded(factory, carrier, Status.SENT, T0 + minutes(90))
    sent = (T0 + minutes(90)).strftime("%Y-%m-%d %H:%M")
    assert _outcome(factory, "r1@example.org") == f"Member Update: sent {sent}"


def test_a_recipient_not_known_to_personify360_was_never_sent(factory: sessionmaker[Session]) -> None:
    mailing = add_mailing(factory, remote=1, unknown=1, name="Member Update")
    (carrier,) = enqueue(factory, item(Kind.MAILING_ACTIVITY, mailing_id=mailing))
    _as_recorded(factory, carrier, Status.SENT, T0 + minutes(90))
    assert _outcome(factory, "r1@example.org") == (
        "Member Update: not sent, not known to Personify360 when the mailing was recorded"
    )


def test_no_remote_recipients_means_none_was_known_to_personify360(factory: sessionmaker[Session]) -> None:
    mailing = add_mailing(factory, remote=0, unknown=1, name="Member Update")
    (carrier,) = enqueue(factory, item(Kind.MAILING_ACTIVITY, mailing_id=mailing))
    _as_recorded(factory, carrier, Status.NO_REMOTE_RECIPIENTS, None)
    assert "not sent" in _outcome(factory, "r0@example.org")
    assert "not known to Personify360" in _outcome(factory, "r0@example.org")


def test_a_recipient_of_a_row_still_to_go_is_not_sent_yet(factory: sessionmaker[Session]) -> None:
    mailing = add_mailing(factory, remote=2, name="Member Update")
    (carrier,) = enqueue(factory, item(Kind.MAILING_ACTIVITY, mailing_id=mailing))
    for status in (Status.NEW, Status.SCHEDULED, Status.PROCESSING, Status.ERROR):
        _as_recorded(factory, carrier, status, None)
        assert _outcome(factory, "r1@example.org") == "Member Update: not sent yet", status
