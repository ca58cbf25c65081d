"""Every status transition is one event row (writeback, from, to, when, by whom, attempt), written by the
database in the transaction of the change: the dispatcher's transitions and a person's alike."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import DISPATCHER, T0, add_mailing, enqueue, fail, item, minutes, run, send
from writeback_console.domain import Status
from writeback_console.store import history, lifecycle, operator_actions, recording
from writeback_console.store.engine import write_transaction
from writeback_console.store.models import Writeback

Factory = sessionmaker[Session]


def transitions(factory: Factory, wid: int) -> list[tuple[Status | None, Status, str | None, int]]:
    with factory() as session:
        return [(e.from_status, e.to_status, e.actor, e.attempt) for e in history.events_of(session, wid)]


def test_each_transition_of_a_row_s_life_is_one_event_naming_who_made_it(factory: Factory) -> None:
    with write_transaction(factory) as session:
        wid = lifecycle.enqueue(session, item(), now=T0, actor="importer@desk").id
    for n in range(3):
        run(factory, T0 + minutes(10 * n + 1))
        fail(factory, wid, T0 + minutes(10 * n + 2))
    with write_transaction(factory) as session:
        operator_actions.manual_retry(session, [wid], actor="advisor@desk", now=T0 + minutes(40))
    run(factory, T0 + minutes(41))
    send(factory, wid, T0 + minutes(42))
    N, P, E, S = Status.NEW, Status.PROCESSING, Status.ERROR, Status.SENT
    assert transitions(factory, wid) == [
        (None, N, "importer@desk", 0),
        (N, P, DISPATCHER, 1),
        (P, E, DISPATCHER, 1),
        (E, P, DISPATCHER, 2),
        (P, E, DISPATCHER, 2),
        (E, P, DISPATCHER, 3),
        (P, E, DISPATCHER, 3),
        (E, N, "advisor@desk", 3),
        (N, P, DISPATCHER, 4),
        (P, S, DISPATCHER, 4),
    ]


def test_an_event_is_dated_by_the_change_and_a_row_s_timeline_is_in_order(factory: Factory) -> None:
    (wid,) = enqueue(factory, item())
    run(factory, T0 + minutes(1))
    send(factory, wid, T0 + minutes(3))
    with factory() as session:
        times = [e.at for e in history.events_of(session, wid)]
        updated = session.execute(select(Writeback.updated_at).where(Writeback.id == wid)).scalar_one()
    assert times == [T0, T0 + minutes(1), T0 + minutes(3)]
    assert times[-1] == updated


def test_a_person_s_schedule_and_cancel_are_events_and_a_reschedule_that_keeps_the_status_is_not(
    factory: Factory,
) -> None:
    mailing = add_mailing(factory, remote=2)
    with write_transaction(factory) as session:
        wid = operator_actions.schedule_mailing_activity(
            session, mailing, at=T0 + minutes(60), actor="staff@desk", now=T0
        ).id
        operator_actions.reschedule(
            session, wid, at=T0 + minutes(90), actor="staff@desk", now=T0 + minutes(1)
        )
        operator_actions.cancel_scheduled(session, wid, actor="lead@desk", now=T0 + minutes(2))
    assert transitions(factory, wid) == [
        (None, Status.SCHEDULED, "staff@desk", 0),
        (Status.SCHEDULED, Status.CANCELLED, "lead@desk", 0),
    ]


def test_rows_put_back_or_recovered_say_so_and_by_whom(factory: Factory) -> None:
    first, second = enqueue(factory, item(), item(email="bo@example.org"))
    claimed = {c.id: c for c in run(factory, T0 + minutes(1))}
    with write_transaction(factory) as session:
        recording.release(session, {first: claimed[first].token}, now=T0 + minutes(2))
    with write_transaction(factory) as session:
        # The holder of the second row died: its lease runs out and another dispatcher takes it back.
        session.execute(
            update(Writeback).where(Writeback.id == second).values(lease_expires_at=T0 + minutes(3))
        )
        assert recording.recover_expired_leases(session, now=T0 + minutes(20), by="other:2") == [second]
    assert transitions(factory, first)[-2:] == [
        (Status.NEW, Status.PROCESSING, DISPATCHER, 1),
        (Status.PROCESSING, Status.NEW, DISPATCHER, 0),
    ]
    assert transitions(factory, second)[-1] == (Status.PROCESSING, Status.NEW, "other:2", 0)


def test_a_change_rolled_back_leaves_no_event(factory: Factory) -> None:
    (wid,) = enqueue(factory, item())
    with pytest.raises(RuntimeError), write_transaction(factory) as session:
        lifecycle.claim(
            session, dispatcher=DISPATCHER, run_started_at=T0 + minutes(1), now=T0 + minutes(1), limit=10
        )
        raise RuntimeError("the dispatcher crashed before commit")
    assert transitions(factory, wid) == [(None, Status.NEW, None, 0)]
