"""The edges of "exactly once", each found by trying to break it, and each held to its rule.

Every test is named after the rule it holds; its docstring tells how the rule broke before it was
fixed. Real SQLite and PostgreSQL, the real simulator over real HTTP; a monkeypatch appears only where
a timing would otherwise be left to luck, and says so.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import enqueue, item, row
from tests.helpers.dispatching import client_for, cycle, refs_in
from tests.helpers.simulator import MakeSimulator
from writeback_console.dispatch.summary import ProblemKind
from writeback_console.domain import Kind, Status, utcnow
from writeback_console.sim.server import SaveEvent
from writeback_console.store import lifecycle, listing, operator_actions, service_health
from writeback_console.store.rows import WritebackRow

Factory = sessionmaker[Session]


def rows_of(factory: Factory) -> list[WritebackRow]:
    with factory() as session:
        return list(listing.iter_rows(session, listing.WritebackFilter(), sort="id", descending=False))


def person(k: int, **extra: Any) -> dict[str, Any]:
    return {
        "master_customer_id": f"{k + 2000:012d}",
        "sub_customer_id": 0,
        "email": f"q{k}@example.org",
        "first_name": "Q",
        "last_name": str(k),
        **extra,
    }


def known(k: int) -> Any:
    return item(
        Kind.RESUBSCRIBE, f"q{k}@example.org", master_customer_id=f"{k + 2000:012d}", sub_customer_id=0
    )


# --- "Did it arrive?": the reference is looked for where the first write went --------------------


def test_a_write_that_may_have_arrived_is_looked_for_under_the_constituent_it_was_written_to(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    """A row known only by its email is written under the constituent the email led to *then*.

    1. The Save for the email-only row reaches Personify360 under constituent X; its answer is lost
       (timeout). The next Save meets a 503: an outage, so both rows are put back (recording.put_back) with
       their doubt, but the constituent the email was resolved to is not kept (only cycle._record calls
       lifecycle.store_constituents; put_back and recover_expired_leases do not).
    2. Before the next run Personify360's data changes: the address's primary owner is now Y.
    3. The next run resolves the email again, to Y, asks for the reference under Y only
       (client.find_activity_by_ref filters on the constituent), does not find it, and writes it again.
    """
    mover = {"master_customer_id": "000000003001", "sub_customer_id": 0, "email": "move@example.org"}
    sim = make_simulator(constituents=[{**mover, "first_name": "X"}, person(0)])
    (first, other) = enqueue(factory, item(Kind.UNSUBSCRIBE, "move@example.org"), known(0))
    saves: list[SaveEvent] = []

    def on_save(event: SaveEvent) -> None:
        saves.append(event)
        if len(saves) == 1:
            # Stored; from now on the front end answers 503 (no Retry-After) ...
            sim.faults.update(fail_rate=1.0, fail_kinds=["503"], retry_after_seconds=None)
            time.sleep(1.0)  # ... and this answer comes too late: the client has given up.

    sim.on_save = on_save
    client = client_for(sim, read_timeout=0.4)
    summary = cycle(factory, client, concurrency=1, batch_size=10)
    assert summary.problem is ProblemKind.OUTAGE
    r = row(factory, first)
    assert (r.status, r.delivery_uncertain) == (Status.NEW, True)
    assert r.master_customer_id == "000000003001"  # whom the email led to is kept
    assert len(sim.activities()) == 1  # it arrived, under X

    sim.on_save = None
    sim.faults.update(fail_rate=0.0)
    # The address moves: Y becomes its primary owner, X keeps it as a secondary one.
    sim.add_constituents(
        [
            {**mover, "first_name": "X", "primary": False},
            {
                "master_customer_id": "000000003002",
                "sub_customer_id": 0,
                "email": "move@example.org",
                "first_name": "Y",
                "primary": True,
            },
        ]
    )
    summary = cycle(factory, client)

    assert summary.problem is None
    assert row(factory, first).status is Status.SENT and row(factory, other).status is Status.SENT
    per_ref = Counter(refs_in(sim))
    assert per_ref[r.ref] == 1, f"{r.ref} is in Personify360 {per_ref[r.ref]} times: {sim.activities()}"


# --- "Did it arrive?": a Save cut by the client may still be written by the server ----------------


class _SlowOnce:
    """Makes exactly the next request the simulator receives wait ``seconds`` before it is read.

    Personify360 that is slow to process one Save (a lock on its side) while it answers reads at once.
    The simulator reads ``faults.latency_ms`` twice at the start of every request; this arms it for
    exactly those two reads. (Timing aid only: nothing of the client or the queue is patched.)
    """

    def __init__(self, sim: Any, seconds: float) -> None:
        self.sim = sim
        self.seconds = seconds
        self.lock = threading.Lock()
        self.reads = 0
        faults = sim.faults
        outer = self

        class _Faults(type(faults)):  # type: ignore[misc]
            @property
            def latency_ms(self) -> float:
                with outer.lock:
                    if outer.reads > 0:
                        outer.reads -= 1
                        return outer.seconds * 1000
                return 0.0

            @latency_ms.setter
            def latency_ms(self, value: float) -> None:
                pass

        faults.__class__ = _Faults

    def arm(self) -> None:
        with self.lock:
            self.reads = 2


def test_a_save_the_client_gave_up_on_is_not_written_again_while_personify360_still_works_on_it(
    factory: Factory, make_simulator: MakeSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timeout after the Save left is "may have arrived": the next send looks for the reference first.

    But the next send may come at once (another dispatcher, the next --once, a recovered lease) and
    Personify360 may still be processing the first Save, which the client merely stopped waiting for
    (cutting a socket does not cancel a request on the server). The look-up finds nothing yet, the row
    is written again, and then the first Save lands too: two activities with one reference.
    recording.record_results sets next_attempt_at to the failure time itself, so an uncertain row is
    eligible for the very next run; nothing waits for a write in flight to settle.
    """
    sim = make_simulator(constituents=[person(0)])
    (wid,) = enqueue(factory, known(0))
    client = client_for(sim, read_timeout=0.5)
    slow = _SlowOnce(sim, 2.5)
    real_create = client.create_activity
    calls = {"n": 0}

    def create_activity(fields: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            slow.arm()  # timing aid: only the first Save is slow on the server's side
        return real_create(fields)

    monkeypatch.setattr(client, "create_activity", create_activity)

    first = cycle(factory, client, dispatcher="console:1", settle_seconds=4)
    r = row(factory, wid)
    assert first.failed == 1 and (r.status, r.delivery_uncertain) == (Status.ERROR, True)
    assert sim.activities() == []  # Personify360 is still working on the first Save
    # Another dispatcher comes along a moment later, as dispatchers do: the row is not due yet.
    second = cycle(factory, client_for(sim), dispatcher="headless:2", settle_seconds=4)
    assert second.claimed == 0
    time.sleep(4.2)  # the first Save is processed, and the wait is over
    third = cycle(factory, client_for(sim), dispatcher="headless:2", settle_seconds=4)
    assert third.sent == 1 and row(factory, wid).status is Status.SENT

    per_ref = Counter(refs_in(sim))
    assert per_ref[r.ref] == 1, f"{r.ref} is in Personify360 {per_ref[r.ref]} times"


# --- One writeback's failure is its own: bytes nobody expected, from Personify360's side ----------


def test_a_nul_byte_in_personify360_data_is_one_rows_error_not_the_end_of_the_cycle(
    pg_url: str, make_simulator: MakeSimulator
) -> None:
    """Personify360 data is bytes nobody vetted: a constituent name with a NUL in it.

    Two constituents share an address and neither is primary, so the row fails with a message naming
    them (send.choose_constituent). The message carries the NUL; PostgreSQL refuses NUL in text, psycopg
    raises DataError, which cycle._database_trouble does not count as trouble ("a bug"), so _flush
    re-raises it: run_cycle ends in a traceback, every other result of the batch is not recorded and
    the claimed rows stay Processing until their leases run out (then each is an interruption).
    """
    from writeback_console.store.engine import make_engine, make_session_factory

    engine = make_engine(pg_url)
    factory = make_session_factory(engine)
    twins = [
        {
            "master_customer_id": f"00000000400{n}",
            "sub_customer_id": 0,
            "email": "twin@example.org",
            "label_name": f"Twin\x00{n}",
            "primary": False,
        }
        for n in (1, 2)
    ]
    sim = make_simulator(constituents=[*twins, *(person(k) for k in range(5))])
    good = enqueue(factory, *(known(k) for k in range(5)))
    (twin,) = enqueue(factory, item(Kind.UNSUBSCRIBE, "twin@example.org"))
    try:
        try:
            summary = cycle(factory, client_for(sim), concurrency=1, batch_size=10, lease_seconds=60)
        except Exception as exc:
            stuck = [r.id for r in rows_of(factory) if r.status is Status.PROCESSING]
            pytest.fail(f"run_cycle raised {type(exc).__name__}: {str(exc)[:120]}; left Processing: {stuck}")
        assert summary.problem is None and summary.sent == 5
        assert all(row(factory, w).status is Status.SENT for w in good)
        bad = row(factory, twin)
        assert bad.status is Status.ERROR and "share the email twin@example.org" in (bad.last_error or "")
    finally:
        engine.dispose()


# --- An outage costs no attempt: a Retry-After nobody expected ----------------------------------


def test_a_503_with_an_odd_retry_after_is_an_outage_and_costs_no_attempt(
    factory: Factory, make_simulator: MakeSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A maintenance page whose Retry-After is "²" (byte 0xB2, a Latin-1 digit to Python).

    client.retry_after_seconds takes it for delta-seconds (str.isdigit() is true for "²") and float()
    raises ValueError. _http_error runs outside _call's try, so the ValueError leaves the client instead
    of a PersonifyError: the probe's failure is "unexpected, sending anyway" (cycle._may_send), then
    every row's request fails the same way and send._internal makes each one an "internal error" that
    uses an attempt. Three such runs and every row is an Error waiting for a person, for a 503.
    """
    import types

    from writeback_console.sim import server as sim_server

    # The simulator's front end writes the Retry-After a real one might: "²" instead of "2".
    monkeypatch.setattr(sim_server, "math", types.SimpleNamespace(ceil=lambda _value: "\u00b2"))
    sim = make_simulator(constituents=[person(k) for k in range(3)])
    ids = enqueue(factory, *(known(k) for k in range(3)))
    sim.faults.update(fail_rate=1.0, fail_kinds=["503"], retry_after_seconds=2)

    summary = cycle(factory, client_for(sim))

    states = [(r.status, r.attempts, r.last_error) for r in rows_of(factory)]
    assert summary.problem is ProblemKind.OUTAGE, (summary.describe(), states)
    assert all((row(factory, w).status, row(factory, w).attempts) == (Status.NEW, 0) for w in ids), states


# --- The migration on real data: a 0001 database as the previous version left it -----------------


@pytest.fixture(params=["sqlite", "postgresql"])
def old_url(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    """A database at revision 0001 (the previous version's schema), on each backend."""
    from tests.helpers.fixtures import create_pg_database, drop_pg_database
    from writeback_console.store.engine import make_engine
    from writeback_console.store.migrate import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    else:
        url = create_pg_database("wbadvmig")
    engine = make_engine(url)
    upgrade(engine, "0001")
    engine.dispose()
    yield url
    if request.param == "postgresql":
        drop_pg_database(url)


class _Old:
    """Rows written straight into the 0001 tables, as the previous version wrote them."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        from writeback_console.store.engine import make_engine

        self.sa = sa
        self.engine = make_engine(url)
        self.sqlite = self.engine.dialect.name == "sqlite"
        self.meta = sa.MetaData()
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.meta.reflect(self.engine)

    def when(self, moment: Any) -> Any:
        return moment.replace(tzinfo=None) if self.sqlite and moment is not None else moment

    def insert(self, table: str, **values: Any) -> int:
        t = self.meta.tables[table]
        values = {k: self.when(v) if hasattr(v, "tzinfo") else v for k, v in values.items()}
        with self.engine.begin() as conn:
            result = conn.execute(self.sa.insert(t).values(**values))
            key = result.inserted_primary_key
            return int(key[0]) if key and key[0] is not None else 0

    def mailing(self, recipients: int) -> tuple[int, list[int]]:
        from tests.helpers.builders import T0

        mid = self.insert("mailing", account="Main", name="Weekly Update", sent_at=T0, created_at=T0)
        rids = [
            self.insert(
                "mailing_recipient",
                mailing_id=mid,
                email=f"r{n}@example.org",
                master_customer_id=f"{n:012d}",
                sub_customer_id=0,
                sent_at=T0,
                clicks=[],
                blocked=False,
            )
            for n in range(recipients)
        ]
        return mid, rids

    def activity_row(self, ref: str, mailing_id: int, status: str, **extra: Any) -> int:
        from tests.helpers.builders import T0

        values: dict[str, Any] = {
            "ref": ref,
            "kind": "mailing_activity",
            "account": "Main",
            "mailing_id": mailing_id,
            "payload": {"mailing_name": "Weekly Update"},
            "occurred_at": T0,
            "status": status,
            "attempts": 0,
            "max_attempts": 3,
            "delivery_uncertain": False,
            "created_at": T0,
            "updated_at": T0,
        }
        values.update(extra)
        return self.insert("writeback", **values)

    def delivery(self, writeback_id: int, recipient_id: int, status: str, uncertain: bool) -> int:
        from tests.helpers.builders import T0

        return self.insert(
            "delivery",
            writeback_id=writeback_id,
            recipient_id=recipient_id,
            status=status,
            attempts=1,
            uncertain=uncertain,
            updated_at=T0,
            sent_at=T0 if status == "sent" else None,
        )

    def close(self) -> None:
        self.engine.dispose()


def _upgraded(url: str) -> tuple[Any, Factory]:
    from writeback_console.store.engine import make_engine, make_session_factory
    from writeback_console.store.migrate import upgrade

    engine = make_engine(url)
    upgrade(engine)
    return engine, make_session_factory(engine)


def _write_old_activity(client: Any, ref: str, master: str, mailing_id: int) -> None:
    """The activity the previous version wrote for one recipient: it ended with the *row's* reference."""
    from tests.helpers.builders import T0
    from writeback_console.personify.mapping import (
        ActivityMapping,
        ActivitySource,
        MailingFacts,
        build_activity,
    )

    source = ActivitySource(
        kind=Kind.MAILING_ACTIVITY,
        ref=ref,
        account="Main",
        email="old@example.org",
        occurred_at=T0,
        master_customer_id=master,
        sub_customer_id=0,
        mailing=MailingFacts(mailing_name="Weekly Update", mailing_id=mailing_id, sent_at=T0),
    )
    client.create_activity(build_activity(source, ActivityMapping()))


def _recipients(n: int) -> list[dict[str, Any]]:
    return [
        {"master_customer_id": f"{k:012d}", "sub_customer_id": 0, "email": f"r{k}@example.org"}
        for k in range(n)
    ]


def test_the_upgrade_goes_through_when_the_second_active_row_of_a_mailing_is_processing(
    old_url: str,
) -> None:
    """Two active mailing-activity rows of one mailing (the old version allowed it), the newer one held
    by a dispatcher (Processing) at the moment of the upgrade.

    0002 keeps the oldest active row and cancels the others, but skips Processing ones
    (``status != 'processing'`` in the UPDATE); the newer Processing row therefore stays active beside
    the oldest, and creating uq_writeback_active_mailing fails: the upgrade stops with an
    IntegrityError and the console cannot start on this database.
    """
    from tests.helpers.builders import T0

    old = _Old(old_url)
    mid, _ = old.mailing(2)
    old.activity_row("WB-OLDERROW1", mid, "error", attempts=1, next_attempt_at=T0)
    old.activity_row(
        "WB-NEWERROW1", mid, "processing", attempts=1, locked_by="old:1", locked_at=T0, claimed_from="new"
    )
    old.close()

    try:
        engine, factory = _upgraded(old_url)
    except Exception as exc:
        pytest.fail(f"the upgrade failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    with factory() as session:
        active = [
            r
            for r in listing.iter_rows(session, listing.WritebackFilter())
            if r.status is not Status.CANCELLED
        ]
    engine.dispose()
    assert len(active) == 1


def test_the_upgrade_keeps_the_doubt_of_a_recipient_another_row_may_have_written(
    old_url: str, make_simulator: MakeSimulator
) -> None:
    """One recipient, two deliveries (one per row, as 0001 kept them): the older row's write may have
    arrived (uncertain), the newer row's delivery is merely pending.

    0002 keeps one delivery per recipient: "the one that arrived wins, otherwise the latest", so the
    pending one survives and gets a fresh reference (it is neither sent nor uncertain), while the
    uncertain one, and with it the only reason to look before writing, is deleted. The next send writes
    the recipient's activity again although the older row's write had arrived.
    """
    from tests.helpers.builders import T0

    sim = make_simulator(constituents=_recipients(1))
    client = client_for(sim)
    old = _Old(old_url)
    mid, (rid,) = old.mailing(1)
    older = old.activity_row(
        "WB-OLDERROW2",
        mid,
        "error",
        attempts=1,
        next_attempt_at=T0,
        delivery_uncertain=True,
        last_error="timed out",
    )
    newer = old.activity_row("WB-NEWERROW2", mid, "new")
    old.delivery(older, rid, "error", uncertain=True)
    old.delivery(newer, rid, "pending", uncertain=False)
    old.close()
    # The older row's write for the recipient did arrive (its answer was what timed out).
    _write_old_activity(client, "WB-OLDERROW2", f"{0:012d}", mid)

    engine, factory = _upgraded(old_url)
    try:
        cycle(factory, client)
        assert row(factory, older).status is Status.SENT
    finally:
        engine.dispose()
    assert len(sim.activities(f"{0:012d}")) == 1, [a["ACTIVITY_TEXT"] for a in sim.activities()]


def test_recipients_a_cancelled_row_had_reached_are_not_written_again_after_the_upgrade(
    old_url: str, make_simulator: MakeSimulator
) -> None:
    """The previous version deleted a cancelled row, and with it (ON DELETE CASCADE) its deliveries.

    A Scheduled mailing activity had reached recipient r0 when its dispatcher died; recovery put it back
    to Scheduled and staff then cancelled it (deleted, the audit entry keeping the row). 0002 rebuilds
    the row as Cancelled from the audit entry (_restore_cancelled) but nothing of its deliveries, so
    when staff schedule the mailing anew, prepare_deliveries finds r0 without a delivery, gives it a
    fresh reference and writes its activity a second time.
    """
    from tests.helpers.builders import T0

    sim = make_simulator(constituents=_recipients(2))
    client = client_for(sim)
    old = _Old(old_url)
    mid, _rids = old.mailing(2)
    gone = {
        "id": 7,
        "ref": "WB-CANCELLED1",
        "kind": "mailing_activity",
        "account": "Main",
        "email": None,
        "master_customer_id": None,
        "sub_customer_id": None,
        "mailing_id": mid,
        "status": "scheduled",
        "attempts": 0,
        "max_attempts": 3,
        "occurred_at": "2026-11-20T09:00:00Z",
        "scheduled_for": "2026-11-21T09:00:00Z",
        "delivery_uncertain": True,
        "last_error": "the dispatcher stopped while sending",
        "created_at": "2026-11-20T09:00:00Z",
        "updated_at": "2026-11-21T09:30:00Z",
        "payload": {"mailing_name": "Weekly Update"},
    }
    event = old.insert(
        "audit_event", at=T0, actor="staff@host", action="cancel", row_count=1, detail={"writeback": gone}
    )
    old.insert("audit_event_row", event_id=event, writeback_id=7, ref="WB-CANCELLED1")
    old.close()
    # What the cancelled row had written before its dispatcher died.
    _write_old_activity(client, "WB-CANCELLED1", f"{0:012d}", mid)

    engine, factory = _upgraded(old_url)
    try:
        with factory() as session:
            assert listing.get_writeback(session, "WB-CANCELLED1").status is Status.CANCELLED
        from writeback_console.store.engine import write_transaction

        with write_transaction(factory) as session:
            again = operator_actions.schedule_mailing_activity(session, mid, at=None, actor="staff").id
        cycle(factory, client)
        assert row(factory, again).status is Status.SENT
    finally:
        engine.dispose()
    per_recipient = Counter(str(a["MASTER_CUSTOMER_ID"]) for a in sim.activities())
    assert per_recipient == {f"{0:012d}": 1, f"{1:012d}": 1}


def test_two_recipients_who_are_one_constituent_each_find_their_own_activity_after_the_upgrade(
    old_url: str, make_simulator: MakeSimulator
) -> None:
    """The previous version ended every recipient's activity with the *row's* reference. A household:
    home@ and work@ are one constituent; the row's writes for both may have arrived (both deliveries
    uncertain), and in fact only one did.

    0002 gives both deliveries the row's reference (legacy: uncertain), so each recipient's look-up
    (client.find_activity_by_ref(constituent, ref)) finds the one activity there is: both are marked
    sent, and the second recipient's activity is never written. Lost, and the row says Sent.
    """
    from tests.helpers.builders import T0

    same = f"{0:012d}"
    sim = make_simulator(constituents=_recipients(1))
    client = client_for(sim)
    old = _Old(old_url)
    mid = old.insert("mailing", account="Main", name="Household", sent_at=T0, created_at=T0)
    rids = [
        old.insert(
            "mailing_recipient",
            mailing_id=mid,
            email=email,
            master_customer_id=same,
            sub_customer_id=0,
            sent_at=T0,
            clicks=[],
            blocked=False,
        )
        for email in ("home@example.org", "work@example.org")
    ]
    wid = old.activity_row(
        "WB-HOUSEHOLD1",
        mid,
        "error",
        attempts=1,
        next_attempt_at=T0,
        delivery_uncertain=True,
        last_error="timed out",
    )
    for rid in rids:
        old.delivery(wid, rid, "error", uncertain=True)
    old.close()
    _write_old_activity(client, "WB-HOUSEHOLD1", same, mid)  # one of the two arrived

    engine, factory = _upgraded(old_url)
    try:
        cycle(factory, client)
        status = row(factory, wid).status
    finally:
        engine.dispose()
    assert len(sim.activities(same)) == 2, f"row is {status}, the constituent has {len(sim.activities(same))}"


# --- remote_health is shared: a probe's "ok" must not wipe an outage learnt meanwhile -------------


def test_a_retry_after_another_dispatcher_just_learnt_is_honoured_by_every_dispatcher(
    factory: Factory, make_simulator: MakeSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dispatcher B probes after an old outage and gets an answer; in the moment between that answer
    and B recording "ok", dispatcher A is told 429 with Retry-After: 3600 and records it.

    set_health(state="ok") overwrote whatever was there (since, not_before and all), so B's stale "ok"
    wiped A's fresh Retry-After, and dispatcher C started sending at once. The monkeypatch only
    places A's write in that moment; A's write is the real service_health.set_health a cycle makes.
    """
    from datetime import timedelta

    from writeback_console.store.engine import write_transaction

    sim = make_simulator(constituents=[person(k) for k in range(3)])
    b = client_for(sim)
    service = b.settings.root
    with write_transaction(factory) as session:
        # An outage some dispatcher found a while ago, whose Retry-After has passed.
        past = utcnow() - timedelta(minutes=5)
        service_health.set_health(
            session,
            service,
            state="outage",
            now=past,
            by="a:1",
            http_status=503,
            not_before=past + timedelta(seconds=30),
        )
    real_probe = b.probe

    def probe() -> None:
        real_probe()  # Personify360 answers B ...
        with write_transaction(factory) as session:  # ... and A, a moment later, is told to wait an hour
            now = lifecycle.database_now(session)
            service_health.set_health(
                session,
                service,
                state="outage",
                now=now,
                by="a:1",
                http_status=429,
                message="Too Many Requests",
                not_before=now + timedelta(seconds=3600),
            )

    monkeypatch.setattr(b, "probe", probe)
    # B has nothing to send: after an outage it probes all the same (cycle._may_send) and records it.
    cycle(factory, b, dispatcher="b:2")
    with factory() as session:
        health = service_health.get_health(session, service)

    enqueue(factory, *(known(k) for k in range(3)))
    asked = sim.request_count
    c = cycle(factory, client_for(sim), dispatcher="c:3")

    assert sim.request_count == asked and c.sent == 0, (
        f"C made {sim.request_count - asked} requests and sent {c.sent} within the hour A was asked to "
        f"wait; remote_health after B: {health}"
    )


# --- Interruptions: only the row that crashes the dispatcher pays for it --------------------------


def test_rows_claimed_beside_a_row_that_kills_every_dispatcher_do_not_use_up_their_attempts(
    tmp_path: Any, db_url: str, factory: Factory, make_simulator: MakeSimulator
) -> None:
    """A row whose sending kills the dispatcher (SIGKILL), claimed in a batch with others, as the default
    batch size (200) does; the others wait in the batch and are never sent before the crash.

    recover_expired_leases cannot tell them apart: every recovered row gets an interruption, the first
    free, every further one counted. So the rows beside the crasher use their attempts exactly as it
    does and end as Errors waiting for a person, though not one byte was ever sent for them. (The
    existing test of this rule runs with --batch-size 1, where no row is ever beside another.)
    """
    import subprocess

    from tests.integration.dispatch.test_exactly_once import EXE, dispatch, env_for
    from writeback_console.domain import retries_exhausted

    sim = make_simulator(constituents=[person(k) for k in range(6)])
    (crasher_id,) = enqueue(
        factory, item(Kind.RESUBSCRIBE, "x@example.org", master_customer_id="000000099999")
    )
    bystanders = enqueue(factory, *(known(k) for k in range(5)))
    crasher = row(factory, crasher_id)
    live: list[subprocess.Popen[str]] = []

    def on_save(event: SaveEvent) -> None:
        if event.text and f"[ref {crasher.ref}]" in event.text:
            for proc in live:
                proc.kill()

    sim.on_save = on_save
    env = env_for(tmp_path, db_url, sim)
    for _ in range(6):
        proc = dispatch(env, "--lease-seconds", "1", "--concurrency", "1", "--batch-size", "10")
        live.append(proc)
        proc.communicate(timeout=60)
        live.clear()
        time.sleep(1.1)
        if retries_exhausted(row(factory, crasher_id).state):
            break
    sim.on_save = None
    done = subprocess.run([EXE, "dispatch", "--once"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr

    assert retries_exhausted(row(factory, crasher_id).state)
    states = {w: (row(factory, w).status, row(factory, w).attempts) for w in bystanders}
    assert all(s is Status.SENT for s, _ in states.values()), states
    # And each of them once.
    assert sorted(refs_in(sim)) == sorted(row(factory, w).ref for w in bystanders)
