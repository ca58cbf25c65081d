"""One big mailing, many dispatchers: a mailing's recipients are claimed in chunks under the same lease and
exactly-once rules as rows, so several dispatchers share one mailing and nobody is written twice.

Real SQLite and PostgreSQL, the simulator over real HTTP, real cycles in threads of their own.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import add_mailing, enqueue, item, row
from tests.helpers.dispatching import client_for, cycle, recipients_as_constituents, refs_in
from tests.helpers.simulator import MakeSimulator
from writeback_console.domain import DeliveryStatus, Kind, Status
from writeback_console.personify.mapping import ActivityMapping, ActivitySource, MailingFacts, build_activity
from writeback_console.sim.server import SaveEvent
from writeback_console.sim.simulator import Simulator
from writeback_console.store import deliveries, lifecycle, listing, progress, recording
from writeback_console.store.engine import write_transaction
from writeback_console.store.models import Delivery

Factory = sessionmaker[Session]


def _mailing_row(factory: Factory, recipients: int) -> int:
    mailing = add_mailing(factory, remote=recipients)
    (wid,) = enqueue(factory, item(Kind.MAILING_ACTIVITY, mailing_id=mailing))
    return wid


def _written_per_recipient(sim: Simulator) -> Counter[str]:
    return Counter(str(a["MASTER_CUSTOMER_ID"]) for a in sim.activities())


def _everyone_once(sim: Simulator, n: int) -> None:
    assert _written_per_recipient(sim) == {f"{k:012d}": 1 for k in range(n)}
    assert len(set(refs_in(sim))) == n


def _claim_row(factory: Factory, wid: int, *, lease_seconds: float = 600) -> lifecycle.Claimed:
    """Claim the row as a dispatcher would, with its recipients prepared, and hand it back."""
    with write_transaction(factory) as session:
        now = lifecycle.database_now(session)
        (claimed,) = lifecycle.claim(
            session, dispatcher="owner:1", run_started_at=now, limit=1, lease_seconds=lease_seconds
        )
        assert claimed.mailing_id is not None
        deliveries.prepare_deliveries(session, wid, claimed.mailing_id, now=now)
    return claimed


def _write_as_the_holder(sim: Simulator, claimed: lifecycle.Claimed, r: deliveries.RecipientDelivery) -> None:
    """Write one recipient's activity the way its chunk's holder did before it died."""
    client = client_for(sim)
    fields = build_activity(
        ActivitySource(
            kind=Kind.MAILING_ACTIVITY,
            ref=r.ref,
            account=claimed.account,
            email=r.email,
            occurred_at=claimed.occurred_at,
            master_customer_id=r.master_customer_id,
            sub_customer_id=r.sub_customer_id,
            mailing=MailingFacts("Weekly Update", claimed.mailing_id or 0, r.sent_at),
        ),
        ActivityMapping(),
    )
    client.create_activity(fields)


def test_two_dispatchers_share_one_mailing_and_write_each_recipient_once(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    n = 80
    sim = make_simulator(constituents=recipients_as_constituents(n))
    sim.faults.latency_ms = 15
    wid = _mailing_row(factory, n)
    summaries: dict[str, Any] = {}

    def dispatcher(name: str) -> None:
        summaries[name] = cycle(
            factory,
            client_for(sim, operator=name.upper()),
            dispatcher=f"{name}:1",
            concurrency=2,
            chunk_size=5,
        )

    first = threading.Thread(target=dispatcher, args=("one",))
    first.start()
    deadline = time.monotonic() + 10
    while row(factory, wid).status is not Status.PROCESSING and time.monotonic() < deadline:
        time.sleep(0.01)
    second = threading.Thread(target=dispatcher, args=("two",))
    second.start()
    first.join(30)
    second.join(30)

    _everyone_once(sim, n)
    by_operator = Counter(str(a["ADDOPER"]) for a in sim.activities())
    assert set(by_operator) == {"ONE", "TWO"} and sum(by_operator.values()) == n
    done = row(factory, wid)
    assert done.status is Status.SENT and done.attempts == 1
    # One of them finished it: the row is Sent once, with one attempt in its history.
    assert sorted(s.sent for s in summaries.values()) == [0, 1]
    with factory() as session:
        assert [(a.outcome, a.counted) for a in listing.attempts_of(session, wid)] == [("sent", True)]
        assert progress.progress_of(session, [wid]) == {wid: (n, n)}


def test_a_mailing_sent_by_several_dispatchers_is_an_error_naming_how_many_failed(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    n = 30
    sim = make_simulator(constituents=recipients_as_constituents(n))
    sim.faults.latency_ms = 10
    sim.faults.fail_emails = ["r3@example.org", "r17@example.org", "r28@example.org"]
    wid = _mailing_row(factory, n)
    threads = [
        threading.Thread(
            target=cycle,
            args=(factory, client_for(sim)),
            kwargs={"dispatcher": f"d{k}:1", "concurrency": 2, "chunk_size": 4},
        )
        for k in range(3)
    ]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join(30)

    failed = row(factory, wid)
    assert failed.status is Status.ERROR and failed.attempts == 1
    assert (failed.last_error or "").startswith("3 of 30 recipients failed (first: ")
    assert len(sim.activities()) == n - 3

    # The retry sends only those three.
    sim.faults.fail_emails = []
    cycle(factory, client_for(sim), chunk_size=4)
    assert row(factory, wid).status is Status.SENT
    _everyone_once(sim, n)


def test_an_expired_chunk_lease_is_taken_back_and_looked_for_not_written_twice(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    n = 12
    sim = make_simulator(constituents=recipients_as_constituents(n))
    wid = _mailing_row(factory, n)
    # Its owner holds the row for a long while; a dispatcher that joined it takes five recipients, writes
    # one of them, and dies before recording anything.
    owner = _claim_row(factory, wid)
    with write_transaction(factory) as session:
        chunk = deliveries.claim_chunk(session, dispatcher="joiner:1", limit=5, lease_seconds=0.3)
    assert chunk is not None and len(chunk.recipients) == 5
    _write_as_the_holder(sim, owner, chunk.recipients[0])
    time.sleep(0.4)

    # Another dispatcher joins the mailing: it takes the dead chunk back, asks before writing, and
    # finishes the row.
    summary = cycle(factory, client_for(sim), dispatcher="other:1", chunk_size=5)

    _everyone_once(sim, n)
    assert summary.sent == 1 and row(factory, wid).status is Status.SENT
    with factory() as session:
        taken_back = session.scalars(
            select(Delivery).where(Delivery.id.in_([r.delivery_id for r in chunk.recipients]))
        ).all()
    assert {d.status for d in taken_back} == {DeliveryStatus.SENT.value}
    # The stale holder, waking up, changes nothing.
    with write_transaction(factory) as session:
        stale = deliveries.record_deliveries(
            session,
            [
                deliveries.DeliveryResult(
                    r.delivery_id,
                    wid,
                    owner.token,
                    False,
                    owner.occurred_at,
                    error="late",
                    chunk_token=chunk.tokens[r.delivery_id],
                )
                for r in chunk.recipients
            ],
        )
    assert stale == set()


def test_a_lost_answer_on_a_chunk_is_looked_for_not_sent_again(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    n = 10
    sim = make_simulator(constituents=recipients_as_constituents(n))
    wid = _mailing_row(factory, n)
    saves: list[SaveEvent] = []

    def on_save(event: SaveEvent) -> None:
        saves.append(event)
        # The fourth Save reaches Personify360, and its answer is lost on the way back.
        sim.faults.update(
            fail_rate=1.0 if len(saves) == 3 else 0.0, fail_kinds=["drop"], after_write_share=1.0
        )

    sim.on_save = on_save
    cycle(factory, client_for(sim), concurrency=1, chunk_size=3)
    sim.on_save = None
    sim.faults.update(fail_rate=0.0)
    assert len(sim.activities()) == n
    failed = row(factory, wid)
    assert failed.status is Status.ERROR
    assert (failed.last_error or "").startswith(f"1 of {n} recipients failed")

    cycle(factory, client_for(sim), chunk_size=3)

    assert row(factory, wid).status is Status.SENT
    _everyone_once(sim, n)


def test_a_mailing_row_is_not_taken_back_while_a_chunk_of_it_is_live(factory: Factory) -> None:
    wid = _mailing_row(factory, 6)
    # The owner's lease runs out (it died); a dispatcher that joined is still sending its chunk.
    _claim_row(factory, wid, lease_seconds=0.2)
    with write_transaction(factory) as session:
        chunk = deliveries.claim_chunk(session, dispatcher="joiner:1", limit=3, lease_seconds=600)
    assert chunk is not None
    time.sleep(0.3)
    with write_transaction(factory) as session:
        # Joining extended the row's lease as far as its own chunk's.
        assert recording.recover_expired_leases(session) == []
        now = lifecycle.database_now(session)
    assert row(factory, wid).status is Status.PROCESSING
    # Once the joiner's chunk has run out too, nobody works on the row: it is taken back, and only the
    # recipients that were in the chunk are in doubt.
    with write_transaction(factory) as session:
        assert recording.recover_expired_leases(session, now=now + timedelta(seconds=601)) == [wid]
    with factory() as session:
        doubt = {
            d: uncertain
            for d, uncertain in session.execute(
                select(Delivery.id, Delivery.uncertain).where(Delivery.writeback_id == wid)
            )
        }
    assert {d for d, uncertain in doubt.items() if uncertain} == set(chunk.tokens)


def test_two_chunk_claims_never_take_the_same_recipient(factory: Factory) -> None:
    wid = _mailing_row(factory, 40)
    _claim_row(factory, wid)
    taken: list[set[int]] = []
    lock = threading.Lock()

    def claim_all(name: str) -> None:
        while True:
            with write_transaction(factory) as session:
                chunk = deliveries.claim_chunk(session, dispatcher=name, limit=3, lease_seconds=600)
            if chunk is None:
                return
            with lock:
                taken.append(set(chunk.tokens))

    threads = [threading.Thread(target=claim_all, args=(f"d{k}:1",)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    every = [d for chunk in taken for d in chunk]
    assert len(every) == len(set(every)) == 40


def test_progress_counts_the_mailings_recipients_that_arrived(factory: Factory) -> None:
    wid = _mailing_row(factory, 5)
    (plain,) = enqueue(factory, item())
    with factory() as session:
        assert progress.progress_of(session, [wid, plain]) == {}
    claimed = _claim_row(factory, wid)
    with write_transaction(factory) as session:
        chunk = deliveries.claim_chunk(session, dispatcher="owner:1", limit=2, lease_seconds=600)
        assert chunk is not None
        deliveries.record_deliveries(
            session,
            [
                deliveries.DeliveryResult(
                    did, wid, claimed.token, True, claimed.occurred_at, chunk_token=token
                )
                for did, token in chunk.tokens.items()
            ],
        )
    with factory() as session:
        assert progress.progress_of(session, [wid, plain]) == {wid: (2, 5)}
