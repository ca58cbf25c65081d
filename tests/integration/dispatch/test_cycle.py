"""The dispatcher cycle against the simulator over real HTTP: each §2 rule that involves sending."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import add_mailing, enqueue, item
from tests.helpers.dispatching import client_for, cycle, recipients_as_constituents, refs_in
from tests.helpers.simulator import SAMPLE_CONSTITUENTS, MakeSimulator
from writeback_console.domain import Kind, Status, utcnow
from writeback_console.personify.mapping import ActivityMapping, ActivitySource, build_activity
from writeback_console.store import lifecycle, listing, operator_actions, switches
from writeback_console.store.engine import write_transaction
from writeback_console.store.models import Attempt, Mailing
from writeback_console.store.rows import WritebackRow

Factory = sessionmaker[Session]
ANN = "ann@example.org"


def rows(factory: Factory) -> list[WritebackRow]:
    with factory() as session:
        return list(listing.iter_rows(session, listing.WritebackFilter(), sort="id", descending=False))


def test_new_writebacks_are_sent_and_marked_sent_with_the_time(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator()
    ids = enqueue(
        factory,
        item(
            Kind.UNSUBSCRIBE,
            ANN,
            payload={"reason": "Too many emails"},
            master_customer_id="000000000101",
            sub_customer_id=0,
        ),
        item(Kind.RESUBSCRIBE, ANN),
        item(Kind.INTERESTS, ANN, payload={"interest": "Advocacy", "opted_in": True}),
    )
    before = utcnow()
    summary = cycle(factory, client_for(sim))

    assert (summary.claimed, summary.sent, summary.failed) == (3, 3, 0)
    for r in rows(factory):
        assert r.status is Status.SENT
        assert r.sent_at is not None and before <= r.sent_at <= utcnow()
        assert r.master_customer_id == "000000000101"
    assert sorted(refs_in(sim)) == sorted(r.ref for r in rows(factory))
    texts = {str(a["ACTIVITY_CODE"]): str(a["ACTIVITY_TEXT"]) for a in sim.activities()}
    assert "Reason: Too many emails" in texts["INFORMZ_UNSUB"]
    assert ids


def test_failing_writeback_is_tried_three_times_over_three_runs_then_waits_for_a_person(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator()
    sim.faults.fail_emails = [ANN]
    (wid,) = enqueue(
        factory, item(Kind.UNSUBSCRIBE, ANN, master_customer_id="000000000101", sub_customer_id=0)
    )
    client = client_for(sim)

    for expected_attempts in (1, 2, 3):
        summary = cycle(factory, client)
        assert (summary.claimed, summary.failed) == (1, 1)
        r = rows(factory)[0]
        # Exactly one attempt per run: a row that fails in a run is not retried in the same run.
        assert (r.status, r.attempts) == (Status.ERROR, expected_attempts)
        assert r.last_http_status == 400 and r.last_error
    assert cycle(factory, client).claimed == 0

    with write_transaction(factory) as session:
        operator_actions.manual_retry(session, [wid], actor="advisor")
    sim.faults.fail_emails = []
    summary = cycle(factory, client)
    assert summary.sent == 1
    with factory() as session:
        history = listing.attempts_of(session, wid)
    assert [(a.number, a.outcome) for a in history] == [(1, "error"), (2, "error"), (3, "error"), (4, "sent")]
    assert refs_in(sim) == [rows(factory)[0].ref]


def test_row_that_fails_in_a_run_is_not_claimed_again_in_it(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator()
    sim.faults.fail_emails = [ANN]
    enqueue(factory, *(item(Kind.RESUBSCRIBE, ANN) for _ in range(30)))
    summary = cycle(factory, client_for(sim), batch_size=7)
    assert (summary.claimed, summary.failed) == (30, 30)
    assert {r.attempts for r in rows(factory)} == {1}


def test_constituent_is_found_by_email_primary_chosen_and_failures_explained(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator()
    sim.add_constituents(
        [
            {
                "master_customer_id": "000000000201",
                "sub_customer_id": 0,
                "email": "twin@example.org",
                "first_name": "A",
                "last_name": "Twin",
                "primary": False,
            },
            {
                "master_customer_id": "000000000202",
                "sub_customer_id": 0,
                "email": "twin@example.org",
                "first_name": "B",
                "last_name": "Twin",
                "primary": False,
            },
        ]
    )
    ids = enqueue(
        factory,
        item(Kind.RESUBSCRIBE, "shared@example.org"),
        item(Kind.RESUBSCRIBE, "nobody@example.org"),
        item(Kind.RESUBSCRIBE, "twin@example.org"),
    )
    cycle(factory, client_for(sim))
    shared, nobody, twin = rows(factory)
    assert (shared.status, shared.master_customer_id) == (Status.SENT, "000000000102")
    assert nobody.status is Status.ERROR
    assert nobody.last_error == "no Personify360 constituent has the email nobody@example.org"
    assert twin.status is Status.ERROR
    assert "2 Personify360 constituents share the email twin@example.org" in (twin.last_error or "")
    assert "000000000201" in (twin.last_error or "") and "000000000202" in (twin.last_error or "")
    assert len(ids) == 3


def test_scheduled_mailing_activity_goes_out_when_due_one_activity_per_remote_recipient(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(constituents=recipients_as_constituents(4))
    mailing = add_mailing(factory, remote=4, unknown=3)
    due = utcnow() + timedelta(seconds=1.5)
    with write_transaction(factory) as session:
        wid = operator_actions.schedule_mailing_activity(session, mailing, at=due, actor="staff").id
    client = client_for(sim)

    assert cycle(factory, client).claimed == 0
    while utcnow() < due:
        time.sleep(0.1)
    summary = cycle(factory, client)

    assert summary.sent == 1
    row = rows(factory)[0]
    assert (row.id, row.status) == (wid, Status.SENT)
    activities = sim.activities()
    assert sorted(str(a["MASTER_CUSTOMER_ID"]) for a in activities) == [f"{k:012d}" for k in range(4)]
    assert {str(a["ACTIVITY_CODE"]) for a in activities} == {"INFORMZ_MAILING"}
    # Each recipient's activity carries a reference of its own, which leads support back to the row.
    refs = refs_in(sim)
    assert len(set(refs)) == 4 and row.ref not in refs
    with factory() as session:
        assert {listing.get_writeback(session, ref).id for ref in refs} == {wid}


def test_mailing_without_remote_recipients_ends_as_no_remote_recipients(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator()
    mailing = add_mailing(factory, remote=0, unknown=5)
    with write_transaction(factory) as session:
        operator_actions.schedule_mailing_activity(session, mailing, at=None, actor="staff")
    summary = cycle(factory, client_for(sim))
    assert summary.no_remote_recipients == 1
    assert rows(factory)[0].status is Status.NO_REMOTE_RECIPIENTS
    assert sim.activities() == []


def test_mailing_activity_that_partly_fails_is_retried_for_the_rest_only(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(constituents=recipients_as_constituents(3))
    sim.faults.fail_emails = ["r1@example.org"]
    mailing = add_mailing(factory, remote=3)
    with write_transaction(factory) as session:
        wid = operator_actions.schedule_mailing_activity(session, mailing, at=None, actor="staff").id
    client = client_for(sim)
    for _ in range(3):
        cycle(factory, client)
    row = rows(factory)[0]
    assert (row.status, row.attempts) == (Status.ERROR, 3)
    assert (row.last_error or "").startswith("1 of 3 recipients failed")
    assert len(sim.activities()) == 2

    sim.faults.fail_emails = []
    with write_transaction(factory) as session:
        operator_actions.manual_retry(session, [wid], actor="advisor")
    cycle(factory, client)
    assert rows(factory)[0].status is Status.SENT
    per_customer = Counter(str(a["MASTER_CUSTOMER_ID"]) for a in sim.activities())
    assert per_customer == {f"{k:012d}": 1 for k in range(3)}


def test_row_whose_earlier_write_arrived_is_marked_sent_without_writing_again(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator()
    client = client_for(sim)
    (wid,) = enqueue(
        factory, item(Kind.RESUBSCRIBE, ANN, master_customer_id="000000000101", sub_customer_id=0)
    )
    with write_transaction(factory) as session:
        claimed = lifecycle.claim(
            session, dispatcher="dead:1", run_started_at=utcnow(), limit=5, lease_seconds=0.01
        )
    # The dead dispatcher's write reached Personify360 before it died.
    c = claimed[0]
    source = ActivitySource(c.kind, c.ref, c.account, ANN, c.occurred_at, "000000000101", 0)
    client.create_activity(build_activity(source, ActivityMapping()))
    time.sleep(0.05)  # let the dead dispatcher's lease run out

    summary = cycle(factory, client)

    assert summary.recovered == 1 and summary.sent == 1
    assert refs_in(sim) == [c.ref]
    row = rows(factory)[0]
    assert row.status is Status.SENT and not row.delivery_uncertain
    with factory() as session:
        assert [a.outcome for a in listing.attempts_of(session, wid)] == ["interrupted", "sent"]


def test_wrong_password_stops_the_cycle_and_rows_keep_their_attempts(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator()
    enqueue(
        factory,
        *(
            item(Kind.RESUBSCRIBE, ANN, master_customer_id="000000000101", sub_customer_id=0)
            for _ in range(60)
        ),
    )
    summary = cycle(factory, client_for(sim, password="wrong"), batch_size=10)

    assert summary.problem == "auth"
    assert summary.stopped_reason is not None and "credentials rejected" in summary.stopped_reason
    assert summary.claimed < 60
    assert all((r.status, r.attempts) == (Status.NEW, 0) for r in rows(factory))
    with factory() as session:
        assert session.execute(select(func.count()).select_from(Attempt)).scalar_one() == 0


def test_unreachable_personify_stops_the_cycle_without_burning_attempts(factory: Factory) -> None:
    enqueue(factory, *(item(Kind.RESUBSCRIBE, ANN) for _ in range(20)))
    closed = "http://127.0.0.1:9/PersonifyDataServices/PersonifyData.svc"
    summary = cycle(factory, client_for(closed), batch_size=5)
    assert summary.problem == "unreachable"
    assert all((r.status, r.attempts) == (Status.NEW, 0) for r in rows(factory))


def test_switched_off_writebacks_queue_up_but_nothing_is_sent(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator()
    enqueue(factory, item(Kind.RESUBSCRIBE, ANN), item(Kind.RESUBSCRIBE, ANN, account="Foundation"))
    with write_transaction(factory) as session:
        switches.set_setting(session, switches.WRITEBACK_ENABLED, False, actor="advisor")
    summary = cycle(factory, client_for(sim))
    assert summary.disabled and summary.describe() == "writebacks are switched off: nothing was sent"
    assert sim.activities() == []

    with write_transaction(factory) as session:
        switches.set_setting(session, switches.WRITEBACK_ENABLED, True, actor="advisor")
        switches.set_setting(
            session, switches.WRITEBACK_ENABLED, False, account="Foundation", actor="advisor"
        )
    summary = cycle(factory, client_for(sim))
    assert summary.sent == 1
    assert [r.status for r in rows(factory)] == [Status.SENT, Status.NEW]


def test_automatic_mailing_activity_is_scheduled_for_new_mailings(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator()
    old = add_mailing(factory, remote=1, name="Before the switch")
    with write_transaction(factory) as session:
        switches.set_setting(session, switches.AUTO_MAILING_ACTIVITY_DAYS, 3, actor="staff")
    time.sleep(0.01)
    with write_transaction(factory) as session:
        new = session.execute(
            insert(Mailing)
            .values(account="Main", name="After", sent_at=utcnow(), created_at=utcnow())
            .returning(Mailing.id)
        ).scalar_one()
    summary = cycle(factory, client_for(sim))
    assert summary.auto_scheduled == 1
    (row,) = rows(factory)
    assert (row.mailing_id, row.status) == (new, Status.SCHEDULED)
    assert row.scheduled_for is not None and row.scheduled_for > utcnow() + timedelta(days=2)
    assert old != new


def test_stopping_a_cycle_finishes_in_flight_and_puts_back_the_rest(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator()
    sim.faults.latency_ms = 40
    enqueue(
        factory,
        *(
            item(Kind.RESUBSCRIBE, ANN, master_customer_id="000000000101", sub_customer_id=0)
            for _ in range(200)
        ),
    )
    stop = threading.Event()
    threading.Timer(0.4, stop.set).start()
    from writeback_console.dispatch.cycle import run_cycle
    from writeback_console.dispatch.summary import DispatchOptions

    summary = run_cycle(
        factory, client_for(sim), ActivityMapping(), DispatchOptions(concurrency=4, batch_size=20), stop=stop
    )
    assert summary.stopped_reason == "asked to stop"
    statuses = Counter(r.status for r in rows(factory))
    assert statuses[Status.PROCESSING] == 0
    assert 0 < statuses[Status.SENT] < 200
    assert statuses[Status.SENT] == len(sim.activities()) == summary.sent
    assert all(r.attempts == 0 for r in rows(factory) if r.status is Status.NEW)
    # Claimed rows were either sent or put back; the rest were never claimed.
    assert summary.claimed == summary.sent + summary.released
    assert statuses[Status.NEW] == 200 - summary.sent


@pytest.mark.parametrize("shape", ["d", "results"])
def test_both_json_shapes_and_error_formats_work_end_to_end(
    factory: Factory, make_simulator: MakeSimulator, shape: str
) -> None:
    sim = make_simulator(json_shape=shape, error_format="json" if shape == "d" else "xml")
    sim.faults.fail_emails = ["o'brien@example.org"]
    enqueue(
        factory,
        item(Kind.RESUBSCRIBE, ANN),
        item(Kind.RESUBSCRIBE, "o'brien@example.org", master_customer_id="000000000104", sub_customer_id=0),
    )
    cycle(factory, client_for(sim))
    ann, pat = rows(factory)
    assert ann.status is Status.SENT
    assert pat.status is Status.ERROR and pat.last_http_status == 400
    assert SAMPLE_CONSTITUENTS
