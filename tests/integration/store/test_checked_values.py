"""The database itself refuses an attempt outcome, delivery status, audit action or health state that
its enum does not name, on both backends; the upgrade that adds those checks refuses a queue holding
such a value, saying which, and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import T0, add_mailing, enqueue, item
from writeback_console.domain import AttemptOutcome, AuditAction, DeliveryStatus, HealthState
from writeback_console.store import operator_actions
from writeback_console.store.engine import make_engine, write_transaction
from writeback_console.store.migrate import alembic_config, current_revision
from writeback_console.store.models import Attempt, AuditEvent, Delivery, MailingRecipient, RemoteHealth

Factory = sessionmaker[Session]


def _attempt(wid: int, outcome: str | None) -> Callable[[Session], object]:
    return lambda s: s.execute(
        insert(Attempt).values(writeback_id=wid, number=1, started_at=T0, outcome=outcome)
    )


def _audit(action: str) -> Callable[[Session], object]:
    return lambda s: s.execute(insert(AuditEvent).values(at=T0, actor="a", action=action, row_count=0))


def _health(state: str) -> Callable[[Session], object]:
    return lambda s: s.execute(insert(RemoteHealth).values(service="https://x/", state=state, checked_at=T0))


def test_every_named_value_is_accepted(factory: Factory) -> None:
    ids = enqueue(factory, *(item(email=f"p{n}@example.org") for n in range(len(AttemptOutcome) + 1)))
    with write_transaction(factory) as session:
        for wid, outcome in zip(ids, [None, *AttemptOutcome], strict=True):
            _attempt(wid, outcome.value if outcome else None)(session)
        for action in AuditAction:
            _audit(action.value)(session)
    for state in HealthState:
        with write_transaction(factory) as session:
            session.execute(text("DELETE FROM remote_health"))
            _health(state.value)(session)


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda wid: _attempt(wid, "succeeded"), id="attempt outcome"),
        pytest.param(lambda wid: _audit("note"), id="audit action"),
        pytest.param(lambda wid: _health("degraded"), id="health state"),
    ],
)
def test_a_value_outside_its_enum_is_refused_by_the_database(
    factory: Factory, write: Callable[[int], Callable[[Session], object]]
) -> None:
    (wid,) = enqueue(factory, item())
    with pytest.raises(IntegrityError), write_transaction(factory) as session:
        write(wid)(session)


def test_a_delivery_status_outside_its_enum_is_refused_by_the_database(factory: Factory) -> None:
    mailing = add_mailing(factory, remote=1)
    with write_transaction(factory) as session:
        wid = operator_actions.schedule_mailing_activity(session, mailing, at=None, actor="staff", now=T0).id
        recipient = session.execute(select(MailingRecipient.id)).scalar_one()

    def delivery(status: str) -> dict[str, object]:
        return {
            "writeback_id": wid,
            "recipient_id": recipient,
            "ref": "WB-0000000000AB",
            "status": status,
            "attempts": 0,
            "uncertain": False,
            "updated_at": T0,
        }

    with pytest.raises(IntegrityError), write_transaction(factory) as session:
        session.execute(insert(Delivery).values(delivery("delivered")))
    for status in DeliveryStatus:
        with write_transaction(factory) as session:
            session.execute(insert(Delivery).values(delivery(status.value)))
            session.execute(text("DELETE FROM delivery"))


def test_the_upgrade_refuses_a_queue_holding_an_unknown_value_and_changes_nothing(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    config = alembic_config(engine)
    command.upgrade(config, "0002")
    with engine.begin() as conn:
        conn.execute(insert(AuditEvent.__table__).values(at=T0, actor="a", action="note", row_count=0))
    with pytest.raises(RuntimeError, match=r"^the queue holds values .*: audit_event\.action = 'note'$"):
        command.upgrade(config, "head")
    assert current_revision(engine) == "0002"
    with engine.connect() as conn:
        assert conn.execute(select(AuditEvent.__table__.c.action)).scalars().all() == ["note"]
    engine.dispose()
