"""The failures that broke "never lose one, never write one twice", each reproduced and held to the rule.

Every test here is named after the rule it holds; each stands for one failure found by people trying the
queue with the faults production brings. Real SQLite and PostgreSQL, the real simulator over real HTTP or
HTTPS, real dispatcher processes where a process is what fails.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.builders import T0, add_mailing, enqueue, item, minutes, row, run
from tests.helpers.dispatching import client_for, cycle, recipients_as_constituents, refs_in
from tests.helpers.simulator import MakeSimulator
from writeback_console.dispatch.cycle import run_cycle
from writeback_console.dispatch.summary import DispatchOptions, ProblemKind
from writeback_console.domain import AuditAction, Kind, Status, retries_exhausted, utcnow
from writeback_console.personify.mapping import ActivityMapping
from writeback_console.sim.server import SaveEvent, TlsFiles
from writeback_console.sim.simulator import Simulator
from writeback_console.store import (
    audit_trail,
    deliveries,
    lifecycle,
    listing,
    operator_actions,
    recording,
    switches,
)
from writeback_console.store.engine import make_engine, make_session_factory, write_transaction
from writeback_console.store.models import AuditEventRow, Mailing, MailingRecipient, Writeback
from writeback_console.store.rows import WritebackRow

Factory = sessionmaker[Session]
EXE = str(Path(sys.executable).with_name("writeback-console"))


def people(n: int) -> list[dict[str, object]]:
    return [
        {
            "master_customer_id": f"{k + 1000:012d}",
            "sub_customer_id": 0,
            "email": f"p{k}@example.org",
            "first_name": "P",
            "last_name": str(k),
        }
        for k in range(n)
    ]


def known(k: int, kind: Kind = Kind.RESUBSCRIBE) -> Any:
    """A writeback for person k that carries its constituent id, so sending it is one Save."""
    return item(kind, f"p{k}@example.org", master_customer_id=f"{k + 1000:012d}", sub_customer_id=0)


def rows_of(factory: Factory) -> list[WritebackRow]:
    with factory() as session:
        return list(listing.iter_rows(session, listing.WritebackFilter(), sort="id", descending=False))


def history(factory: Factory, wid: int) -> list[listing.AttemptRow]:
    with factory() as session:
        return listing.attempts_of(session, wid)


def assert_each_ref_once(factory: Factory, sim: Simulator) -> None:
    per_ref = Counter(refs_in(sim))
    assert [ref for ref, n in per_ref.items() if n > 1] == []
    sent = {
        r.ref for r in rows_of(factory) if r.status is Status.SENT and r.kind is not Kind.MAILING_ACTIVITY
    }
    assert sent <= set(per_ref)


def env_for(tmp_path: Path, db_url: str, sim: Simulator, **settings: Any) -> dict[str, str]:
    """The environment of a dispatcher process; its runs follow each other at once, so a write that
    may have arrived is looked for without the usual two minutes' wait."""
    import json

    config = tmp_path / "config" / "writeback-console"
    config.mkdir(parents=True, exist_ok=True)
    (config / "settings.json").write_text(json.dumps({"settle_seconds": 0, **settings}), encoding="utf-8")
    return {
        **os.environ,
        "WRITEBACK_DB_URL": db_url,
        "WRITEBACK_PERSONIFY_URL": sim.url,
        "WRITEBACK_PERSONIFY_USER": "u",
        "WRITEBACK_PERSONIFY_PASSWORD": "p",
        "WRITEBACK_NO_KEYRING": "1",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }


def dispatch(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [EXE, "dispatch", "--once", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


# --- 1. whatever goes wrong with one writeback is that writeback's Error ----------------------------


def test_a_poison_row_is_its_own_error_and_the_rest_go_out(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(constituents=people(20))
    good = enqueue(factory, *(item(Kind.UNSUBSCRIBE, f"p{k}@example.org") for k in range(20)))
    # Got into the queue before intake refused such bytes: DEL and a C1 control in the address.
    (poison,) = enqueue(factory, item(Kind.UNSUBSCRIBE, "poi\x7fson\x85@example.org"))
    client = client_for(sim)

    summary = cycle(factory, client, batch_size=25)

    assert summary.problem is None and (summary.sent, summary.failed) == (20, 1)
    assert all(row(factory, wid).status is Status.SENT for wid in good)
    bad = row(factory, poison)
    assert bad.status is Status.ERROR and bad.attempts == 1
    assert (bad.last_error or "").startswith("internal error: ValueError") and "U+007F" in (
        bad.last_error or ""
    )
    # It does not come back first in every run for ever: it uses its attempts like any other failure.
    cycle(factory, client)
    cycle(factory, client)
    bad = row(factory, poison)
    assert bad.attempts == 3 and retries_exhausted(bad.state)
    assert [a.outcome for a in history(factory, poison)] == ["error", "error", "error"]
    assert not [r for r in rows_of(factory) if r.status is Status.PROCESSING]


def test_a_row_whose_recipients_cannot_be_prepared_is_its_own_error(
    factory: Factory, make_simulator: MakeSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = make_simulator(constituents=recipients_as_constituents(3) + people(5))
    mailing = add_mailing(factory, remote=3)
    with write_transaction(factory) as session:
        wid = operator_actions.schedule_mailing_activity(session, mailing, at=None, actor="staff").id
    good = enqueue(factory, *(known(k) for k in range(5)))
    real = deliveries.prepare_deliveries

    def broken(session: Session, writeback_id: int, mailing_id: int, **kw: Any) -> deliveries.FanOut:
        if writeback_id == wid:
            raise RuntimeError("a bug met this mailing's data")
        return real(session, writeback_id, mailing_id, **kw)

    monkeypatch.setattr(deliveries, "prepare_deliveries", broken)
    summary = cycle(factory, client_for(sim), batch_size=10)

    assert summary.problem is None and summary.sent == 5
    assert all(row(factory, w).status is Status.SENT for w in good)
    bad = row(factory, wid)
    assert bad.status is Status.ERROR and bad.attempts == 1
    assert bad.last_error == "internal error: RuntimeError: a bug met this mailing's data"


def test_an_operator_name_that_cannot_go_in_a_header_is_refused_before_anything_is_sent(
    tmp_path: Path, db_url: str, factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(constituents=people(3))
    enqueue(factory, *(known(k) for k in range(3)))
    env = env_for(tmp_path, db_url, sim, operator="Informz – sync")

    done = subprocess.run([EXE, "dispatch", "--once"], env=env, capture_output=True, text=True, timeout=60)

    assert done.returncode == 3, done.stderr  # the Personify360 settings cannot be used
    assert "operator: '–' (U+2013) cannot be sent in the AddModOper header" in done.stderr
    assert "Traceback" not in done.stderr
    assert sim.request_count == 0
    assert {r.status for r in rows_of(factory)} == {Status.NEW}


# --- 2. a lease is the holder's ------------------------------------------------------------------


def test_a_console_and_a_headless_dispatcher_with_other_leases_write_every_reference_once(
    tmp_path: Path, db_url: str, factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(constituents=people(40))
    sim.faults.latency_ms = 120
    enqueue(factory, *(known(k) for k in range(40)))
    env = env_for(tmp_path, db_url, sim)
    # The console holds every row with its 15-minute lease and sends them two at a time (~2.5 s).
    console = dispatch(env, "--lease-seconds", "900", "--concurrency", "2", "--batch-size", "40")
    time.sleep(1.5)
    # A headless dispatcher with a one-second lease comes along: the rows are not its to take.
    headless = subprocess.run(
        [EXE, "dispatch", "--once", "--lease-seconds", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    _out, err = console.communicate(timeout=120)

    assert console.returncode == 0 and headless.returncode == 0, (err, headless.stderr)
    assert "recovered from a stopped dispatcher" not in headless.stdout
    assert_each_ref_once(factory, sim)
    assert {r.status for r in rows_of(factory)} == {Status.SENT}
    assert len(refs_in(sim)) == 40


def test_a_dispatcher_that_slept_past_its_lease_sends_nothing_it_no_longer_holds(
    tmp_path: Path, db_url: str, factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(constituents=people(30))
    sim.faults.latency_ms = 100
    enqueue(factory, *(known(k) for k in range(30)))
    env = env_for(tmp_path, db_url, sim)
    sleeper = dispatch(env, "--lease-seconds", "2", "--concurrency", "1", "--batch-size", "30")
    time.sleep(0.8)
    sleeper.send_signal(signal.SIGSTOP)  # the laptop's lid closes
    # It opens again while the other dispatcher is at work (on SQLite the sleeper may have been frozen
    # holding the write lock, which the other then waits for).
    wake = threading.Timer(5.0, sleeper.send_signal, args=(signal.SIGCONT,))
    try:
        time.sleep(3.0)  # longer than its lease
        wake.start()
        other = subprocess.run(
            [EXE, "dispatch", "--once", "--lease-seconds", "2"],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert other.returncode == 0, other.stderr
    finally:
        wake.join(10)
        sleeper.send_signal(signal.SIGCONT)
    _out, err = sleeper.communicate(timeout=60)
    assert sleeper.returncode == 0, err
    # Whatever the sleeper put back on waking is sent by the next run.
    done = subprocess.run([EXE, "dispatch", "--once"], env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr

    assert "Traceback" not in err + other.stderr + done.stderr
    assert_each_ref_once(factory, sim)
    assert {r.status for r in rows_of(factory)} == {Status.SENT}
    assert len(refs_in(sim)) == 30


def test_rows_whose_lease_ran_short_before_sending_go_out_later_in_the_same_run(
    factory: Factory, make_simulator: MakeSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from writeback_console.dispatch import lease as lease_module
    from writeback_console.personify.transport import NotSent

    sim = make_simulator(constituents=people(6))
    ids = enqueue(factory, *(known(k) for k in range(6)))
    refusals = {"left": 4}
    real_check = lease_module.RowLease.check

    def check(self: lease_module.RowLease) -> None:
        if refusals["left"] > 0:
            refusals["left"] -= 1
            raise NotSent("this dispatcher's lease on the writeback runs out in 0.1 s")
        real_check(self)

    monkeypatch.setattr(lease_module.RowLease, "check", check)
    summary = cycle(factory, client_for(sim), concurrency=2)

    assert refusals["left"] == 0
    assert summary.sent == 6 and summary.released >= 1
    assert all(row(factory, wid).status is Status.SENT for wid in ids)
    # Nothing was written for the refused tries, and they used no attempt.
    assert all(row(factory, wid).attempts == 1 for wid in ids)
    assert len(refs_in(sim)) == 6


def test_a_holders_writes_name_its_lease_so_a_stale_holder_changes_nothing(factory: Factory) -> None:
    (wid,) = enqueue(factory, item())
    (first,) = run(factory, T0)
    with write_transaction(factory) as session:
        recording.recover_expired_leases(session, now=T0 + minutes(20))
    (second,) = run(factory, T0 + minutes(21))
    assert second.token == first.token + 1
    with write_transaction(factory) as session:
        # Same dispatcher name (a console restarted in the same process), but the old lease's token.
        assert not recording.mark_sent(
            session, wid, token=first.token, dispatcher="test-host:1", sent_at=T0 + minutes(22)
        )
        assert (
            lifecycle.renew_leases(session, {wid: first.token}, lease_seconds=60, now=T0 + minutes(22))
            == set()
        )
        assert lifecycle.renew_leases(
            session, {wid: second.token}, lease_seconds=60, now=T0 + minutes(22)
        ) == {wid}
    assert row(factory, wid).status is Status.PROCESSING


# --- 3. only a failure before any byte left counts as "not sent" --------------------------------


def test_a_tls_error_after_the_request_left_is_checked_before_writing_again(
    factory: Factory, make_simulator: MakeSimulator, tls_files: TlsFiles
) -> None:
    sim = make_simulator(tls=tls_files)
    (wid,) = enqueue(factory, item(Kind.RESUBSCRIBE, "ann@example.org", master_customer_id="000000000101"))
    client = client_for(sim, tls=tls_files)
    client.probe()  # the activity template, fetched while all is well
    # The Save arrives and is stored; the answer comes back as a broken TLS record.
    sim.faults.update(fail_rate=1.0, fail_kinds=["tls_reset"], after_write_share=1.0)

    cycle(factory, client)

    r = row(factory, wid)
    assert (r.status, r.attempts, r.delivery_uncertain) == (Status.ERROR, 1, True)
    assert "broke after the request was sent" in (r.last_error or "")
    assert len(sim.activities()) == 1
    sim.faults.update(fail_rate=0.0)

    cycle(factory, client)

    r = row(factory, wid)
    assert r.status is Status.SENT
    assert refs_in(sim) == [r.ref]
    assert history(factory, wid)[-1].message == "already in Personify360 from an earlier attempt"


def test_a_tls_handshake_that_fails_is_known_not_to_have_sent_anything(
    make_simulator: MakeSimulator, tls_files: TlsFiles
) -> None:
    from writeback_console.personify.errors import PersonifyError

    sim = make_simulator(tls=tls_files)
    client = client_for(sim)  # does not trust the simulator's certificate
    with pytest.raises(PersonifyError) as info:
        client.create_activity({"MasterCustomerId": "000000000101", "ActivityCode": "INFORMZ_RESUB"})
    assert info.value.sent is False and not info.value.may_have_arrived and info.value.unreachable
    assert sim.activities() == []


# --- 4. rows put back keep their doubt and their attempt -----------------------------------------


def test_rows_put_back_by_an_outage_keep_their_doubt_and_their_attempt_in_the_history(
    factory: Factory, make_simulator: MakeSimulator, tls_files: TlsFiles
) -> None:
    sim = make_simulator(constituents=people(5), tls=tls_files)
    ids = enqueue(factory, *(known(k) for k in range(5)))
    saves: list[SaveEvent] = []

    def on_save(event: SaveEvent) -> None:
        saves.append(event)
        if len(saves) == 1:
            # The first Save reached Personify360 and its answer broke; then the maintenance page.
            sim.faults.update(fail_rate=1.0, fail_kinds=["503"], retry_after_seconds=None)

    client = client_for(sim, tls=tls_files)
    client.probe()  # the activity template, fetched while all is well
    sim.faults.update(fail_rate=1.0, fail_kinds=["tls_reset"], after_write_share=1.0)
    sim.on_save = on_save

    summary = cycle(factory, client, concurrency=1, batch_size=5)

    assert summary.problem is ProblemKind.OUTAGE and summary.problem_status == 503
    first, second = row(factory, ids[0]), row(factory, ids[1])
    assert (first.status, first.attempts, first.delivery_uncertain) == (Status.NEW, 0, True)
    assert (second.status, second.attempts, second.delivery_uncertain) == (Status.NEW, 0, False)
    for wid in ids[:2]:
        assert [(a.outcome, a.counted) for a in history(factory, wid)] == [("outage", False)]
    # The rest went back untried, or tried into the outage: either way, no attempt used.
    for wid in ids[2:]:
        assert row(factory, wid).attempts == 0
        assert all(not a.counted for a in history(factory, wid))
    assert len(sim.activities()) == 1

    sim.on_save = None
    sim.faults.update(fail_rate=0.0)
    summary = cycle(factory, client)

    assert summary.problem is None and summary.sent == 5
    assert_each_ref_once(factory, sim)
    assert len(sim.activities()) == 5
    assert [(a.outcome, a.counted) for a in history(factory, ids[0])] == [("outage", False), ("sent", True)]
    assert row(factory, ids[0]).attempts == 1


# --- 5. a mailing's activity at most once per recipient, whatever happens to its rows -------------


def _stop_after(sim: Simulator, saves: int) -> threading.Event:
    stop = threading.Event()
    seen: list[SaveEvent] = []

    def on_save(event: SaveEvent) -> None:
        seen.append(event)
        if len(seen) >= saves:
            stop.set()

    sim.on_save = on_save
    return stop


def test_a_cancelled_part_delivered_mailing_activity_is_kept_and_nobody_is_written_twice(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(constituents=recipients_as_constituents(6))
    mailing = add_mailing(factory, remote=6)
    due = utcnow() + timedelta(seconds=1)
    with write_transaction(factory) as session:
        first = operator_actions.schedule_mailing_activity(session, mailing, at=due, actor="staff")
    while utcnow() < due:
        time.sleep(0.05)
    client = client_for(sim)
    stop = _stop_after(sim, 3)
    # The run stops part-way through the mailing (a console closed): the row goes back to Scheduled.
    run_cycle(
        factory, client, ActivityMapping(), DispatchOptions(concurrency=1, dispatcher="console:1"), stop=stop
    )
    sim.on_save = None
    part = row(factory, first.id)
    assert part.status is Status.SCHEDULED and part.attempts == 0
    assert [(a.outcome, a.counted) for a in history(factory, first.id)] == [("stopped", False)]
    assert 3 <= len(sim.activities()) < 6

    with write_transaction(factory) as session:
        operator_actions.cancel_scheduled(session, first.id, actor="staff")
    with write_transaction(factory) as session:
        again = operator_actions.schedule_mailing_activity(session, mailing, at=None, actor="staff")
    summary = cycle(factory, client)

    assert summary.sent == 1
    assert row(factory, first.id).status is Status.CANCELLED
    assert row(factory, again.id).status is Status.SENT and again.id > first.id
    per_constituent = Counter(str(a["MASTER_CUSTOMER_ID"]) for a in sim.activities())
    assert per_constituent == {f"{k:012d}": 1 for k in range(6)}
    with factory() as session:
        assert [e.action for e in audit_trail.audit_of(session, first.id)] == ["schedule", "cancel"]
        assert [e.action for e in audit_trail.audit_of(session, again.id)] == ["send_now"]


def test_automatic_scheduling_never_recreates_what_staff_cancelled(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(constituents=recipients_as_constituents(2))
    with write_transaction(factory) as session:
        switches.set_setting(
            session,
            switches.AUTO_MAILING_ACTIVITY_DAYS,
            1,
            account="Main",
            actor="advisor",
            now=T0 - timedelta(days=1),
        )
    mailing = add_mailing(factory, remote=2)
    client = client_for(sim)
    cycle(factory, client)
    (auto,) = rows_of(factory)
    assert (auto.status, auto.mailing_id) == (Status.SCHEDULED, mailing)
    with write_transaction(factory) as session:
        operator_actions.cancel_scheduled(session, auto.id, actor="staff")

    for _ in range(2):
        assert cycle(factory, client).auto_scheduled == 0

    assert [(r.id, r.status) for r in rows_of(factory)] == [(auto.id, Status.CANCELLED)]
    assert sim.activities() == []


def test_ids_are_never_reused_so_an_audit_entry_never_comes_to_point_at_another_writeback(
    factory: Factory,
) -> None:
    _first, last = enqueue(factory, item(), item(email="bo@example.org"))
    with write_transaction(factory) as session:
        audit_trail.record_audit(
            session, actor="advisor", action=AuditAction.RETRY, rows=[(last, "x")], now=T0
        )
    with write_transaction(factory) as session:
        # The newest row goes (retention prunes rows; audit entries are kept for good) ...
        session.execute(delete(Writeback).where(Writeback.id == last))
    # ... and its id is not handed out again, so its audit entry never names another writeback.
    (newer,) = enqueue(factory, item(email="cy@example.org"))
    assert newer > last
    with factory() as session:
        assert session.scalars(select(AuditEventRow.writeback_id)).all() == [last]
        assert session.get(Writeback, last) is None


# --- 6. every recipient has a key of its own -----------------------------------------------------


def _mailing_with(factory: Factory, recipients: list[tuple[str, str]]) -> int:
    with write_transaction(factory) as session:
        mid = session.execute(
            insert(Mailing)
            .values(account="Main", name="Household", sent_at=T0, created_at=T0)
            .returning(Mailing.id)
        ).scalar_one()
        session.execute(
            insert(MailingRecipient),
            [
                {
                    "mailing_id": mid,
                    "email": email,
                    "master_customer_id": master,
                    "sub_customer_id": 0,
                    "sent_at": T0,
                    "clicks": [],
                    "blocked": False,
                }
                for email, master in recipients
            ],
        )
    return int(mid)


def test_two_recipients_who_are_one_constituent_are_each_written_once(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(constituents=recipients_as_constituents(1))
    same = f"{0:012d}"
    mailing = _mailing_with(factory, [("home@example.org", same), ("work@example.org", same)])
    with write_transaction(factory) as session:
        wid = operator_actions.schedule_mailing_activity(session, mailing, at=None, actor="staff").id
    saves: list[SaveEvent] = []

    def on_save(event: SaveEvent) -> None:
        saves.append(event)
        # After the first recipient's activity, the connection drops before the second is written.
        sim.faults.update(
            fail_rate=1.0 if len(saves) == 1 else 0.0, fail_kinds=["drop"], after_write_share=0.0
        )

    sim.on_save = on_save
    client = client_for(sim)
    cycle(factory, client, concurrency=1)
    assert row(factory, wid).status is Status.ERROR and len(sim.activities()) == 1
    sim.on_save = None
    sim.faults.update(fail_rate=0.0)

    cycle(factory, client)

    assert row(factory, wid).status is Status.SENT
    activities = sim.activities()
    assert [str(a["MASTER_CUSTOMER_ID"]) for a in activities] == [same, same]
    assert len(set(refs_in(sim))) == 2


# --- 7. an outage costs no attempt ---------------------------------------------------------------


def test_a_maintenance_window_costs_no_attempt_and_says_since_when(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(constituents=people(30))
    ids = enqueue(factory, *(known(k) for k in range(30)))
    sim.faults.update(fail_rate=1.0, fail_kinds=["503"], retry_after_seconds=1)
    client = client_for(sim)
    summaries = []
    for _ in range(3):
        summaries.append(cycle(factory, client))
        time.sleep(1.1)  # the Retry-After

    for s in summaries:
        assert s.problem is ProblemKind.OUTAGE and s.problem_status == 503
        assert (
            "Personify360 unavailable (503) since " in s.describe() and "no attempt was used" in s.describe()
        )
    assert len({s.problem_since for s in summaries}) == 1
    # One probe per run, and not one writeback claimed, let alone an attempt used.
    assert sim.request_count == 3
    assert all((r.status, r.attempts) == (Status.NEW, 0) for r in rows_of(factory))
    assert all(history(factory, wid) == [] for wid in ids)

    sim.faults.update(fail_rate=0.0)
    summary = cycle(factory, client)

    assert summary.problem is None and summary.sent == 30
    assert all((r.status, r.attempts) == (Status.SENT, 1) for r in rows_of(factory))


def test_nothing_is_sent_before_the_retry_after_that_personify360_asked_for(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(constituents=people(3))
    enqueue(factory, *(known(k) for k in range(3)))
    sim.faults.update(fail_rate=1.0, fail_kinds=["429"], retry_after_seconds=2)
    client = client_for(sim)
    first = cycle(factory, client)
    assert first.problem is ProblemKind.OUTAGE and first.retry_at is not None
    asked = sim.request_count
    sim.faults.update(fail_rate=0.0)

    waiting = cycle(factory, client)

    assert waiting.problem is ProblemKind.OUTAGE and "next try after" in waiting.describe()
    assert sim.request_count == asked
    time.sleep(2.1)
    assert cycle(factory, client).sent == 3


def test_an_outage_found_part_way_through_a_run_puts_the_rest_back_without_attempts(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(constituents=people(12))
    ids = enqueue(factory, *(known(k) for k in range(12)))
    saves: list[SaveEvent] = []

    def on_save(event: SaveEvent) -> None:
        saves.append(event)
        if len(saves) == 4:
            sim.faults.update(fail_rate=1.0, fail_kinds=["502"])

    sim.on_save = on_save
    summary = cycle(factory, client_for(sim), concurrency=1, batch_size=12)

    assert summary.problem is ProblemKind.OUTAGE and summary.sent == 4
    rows = {r.id: r for r in rows_of(factory)}
    assert [rows[wid].status for wid in ids[:4]] == [Status.SENT] * 4
    assert all((rows[wid].status, rows[wid].attempts) == (Status.NEW, 0) for wid in ids[4:])


def test_most_requests_timing_out_is_an_outage_but_one_500_uses_an_attempt(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(constituents=people(6))
    enqueue(factory, *(known(k) for k in range(6)))
    sim.faults.update(fail_rate=1.0, fail_kinds=["timeout"], hold_seconds=1.0, after_write_share=0.0)
    client = client_for(sim, read_timeout=0.3)

    summary = cycle(factory, client, concurrency=6)

    assert summary.problem is ProblemKind.OUTAGE
    assert all((r.status, r.attempts) == (Status.NEW, 0) for r in rows_of(factory))

    # A single failure among answers is that row's own, and counts.
    sim.faults.update(fail_rate=0.0)
    sim.faults.fail_emails = ["p9@example.org"]
    sim.add_constituents(people(10))
    (odd,) = enqueue(factory, item(Kind.RESUBSCRIBE, "p9@example.org"))
    summary = cycle(factory, client)
    assert summary.problem is None and summary.sent == 6
    assert (row(factory, odd).status, row(factory, odd).attempts) == (Status.ERROR, 1)


def test_rejected_credentials_cost_one_request_per_run(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(constituents=people(10))
    enqueue(factory, *(known(k) for k in range(10)))
    client = client_for(sim, password="wrong")
    for _ in range(3):
        summary = cycle(factory, client, concurrency=8)
        assert summary.problem is ProblemKind.AUTH
        assert "credentials rejected by Personify360" in summary.describe()
    assert sim.request_count == 3
    assert all((r.status, r.attempts) == (Status.NEW, 0) for r in rows_of(factory))

    assert cycle(factory, client_for(sim)).sent == 10


# --- 8. every request has a total deadline -------------------------------------------------------


def test_a_dripping_answer_is_cut_at_the_request_deadline_and_looked_for_before_sending_again(
    factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator()
    (wid,) = enqueue(factory, item(Kind.RESUBSCRIBE, "ann@example.org", master_customer_id="000000000101"))
    client = client_for(sim, read_timeout=1.0, request_deadline=1.5)
    client.probe()  # the activity template, fetched while all is well
    sim.faults.update(fail_rate=1.0, fail_kinds=["drip"], drip_interval=0.05)

    started = time.monotonic()
    cycle(factory, client)

    # Two requests (the probe and the Save), each ended at its 1.5 s, although bytes kept coming.
    assert time.monotonic() - started < 6
    r = row(factory, wid)
    assert (r.status, r.delivery_uncertain) == (Status.ERROR, True)
    assert "no complete answer within the 1.5 s" in (r.last_error or "")
    sim.faults.update(fail_rate=0.0)

    cycle(factory, client)

    assert row(factory, wid).status is Status.SENT
    assert len(sim.activities()) == 1


# --- 9. a database that refuses does not lose results --------------------------------------------


def _lock_after_first_save(sim: Simulator, path: str, seconds: float) -> threading.Thread:
    started = threading.Event()

    def on_save(_event: SaveEvent) -> None:
        started.set()

    def hold() -> None:
        started.wait(20)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")  # a large import, say
            time.sleep(seconds)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    sim.on_save = on_save
    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    return thread


def _short_busy_factory(sqlite_url: str) -> tuple[Factory, str]:
    path = sqlite_url.removeprefix("sqlite:///")
    engine = make_engine(f"{sqlite_url}?busy_timeout_ms=200")
    return make_session_factory(engine), path


def test_a_locked_database_while_recording_keeps_every_result_and_writes_it_later(
    sqlite_url: str, make_simulator: MakeSimulator
) -> None:
    factory, path = _short_busy_factory(sqlite_url)
    sim = make_simulator(constituents=people(10))
    sim.faults.latency_ms = 150
    enqueue(factory, *(known(k) for k in range(10)))
    lock = _lock_after_first_save(sim, path, 2.0)

    summary = cycle(factory, client_for(sim), concurrency=2)
    lock.join(10)

    assert summary.problem is None and summary.sent == 10
    assert {r.status for r in rows_of(factory)} == {Status.SENT}
    assert_each_ref_once(factory, sim)


def test_a_database_that_stays_locked_ends_the_cycle_in_words_and_loses_nothing(
    sqlite_url: str, make_simulator: MakeSimulator
) -> None:
    factory, path = _short_busy_factory(sqlite_url)
    sim = make_simulator(constituents=people(8))
    sim.faults.latency_ms = 100
    enqueue(factory, *(known(k) for k in range(8)))
    lock = _lock_after_first_save(sim, path, 4.0)

    summary = cycle(factory, client_for(sim), concurrency=2, lease_seconds=2, database_patience=1.0)

    assert summary.problem is ProblemKind.DATABASE
    assert "the queue database refused writes (database is locked)" in (summary.stopped_reason or "")
    lock.join(10)
    sim.on_save = None
    time.sleep(2.2)  # the leases of the rows it could not record run out
    for _ in range(2):
        cycle(factory, client_for(sim))
    assert {r.status for r in rows_of(factory)} == {Status.SENT}
    assert_each_ref_once(factory, sim)
    assert len(refs_in(sim)) == 8


def test_a_dropped_postgresql_connection_while_recording_is_retried(
    pg_url: str, make_simulator: MakeSimulator
) -> None:
    engine = make_engine(pg_url)
    factory = make_session_factory(engine)
    sim = make_simulator(constituents=people(10))
    sim.faults.latency_ms = 100
    enqueue(factory, *(known(k) for k in range(10)))
    killer = make_engine(pg_url)
    dropped = threading.Event()

    def on_save(_event: SaveEvent) -> None:
        if not dropped.is_set():
            dropped.set()
            with killer.connect() as conn:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )

    sim.on_save = on_save
    summary = cycle(factory, client_for(sim), concurrency=2)

    assert dropped.is_set()
    assert summary.problem is None and summary.sent == 10
    assert_each_ref_once(factory, sim)
    engine.dispose()
    killer.dispose()


def test_a_claim_the_database_refused_with_nothing_left_to_record_is_tried_again_soon(
    factory: Factory, make_simulator: MakeSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the chaos simulation (seed 10, PostgreSQL): a dropped connection met by the claim of the
    next batch, with every result already recorded, left the cycle waiting the database's whole
    patience (120 s) before it gave up: only recording results tried the database again."""
    sim = make_simulator(constituents=people(6))
    ids = enqueue(factory, *(known(k) for k in range(6)))
    real_claim = lifecycle.claim
    calls = {"n": 0}

    def claim(session: Session, **kw: Any) -> Any:
        # The claim of interrupted rows comes once everything else is sent and recorded.
        if kw.get("interrupted") is True:
            calls["n"] += 1
        if calls["n"] == 1 and kw.get("interrupted") is True:
            raise sa_exc.OperationalError(
                "claim", {}, Exception("terminating connection due to administrator command")
            )
        return real_claim(session, **kw)

    monkeypatch.setattr(lifecycle, "claim", claim)
    started = time.monotonic()
    summary = cycle(factory, client_for(sim), batch_size=3, database_patience=120.0)

    assert time.monotonic() - started < 20, "the refused claim was not tried again"
    assert summary.problem is None and summary.sent == 6
    assert {row(factory, wid).status for wid in ids} == {Status.SENT}


# --- 10. a row that crashes every dispatcher runs out of attempts --------------------------------


def test_an_interruption_counts_from_the_second_in_a_row(factory: Factory) -> None:
    (wid,) = enqueue(factory, item())
    at = T0
    for _ in range(8):
        claimed = run(factory, at)
        if not claimed:
            break
        at += minutes(20)  # the dispatcher died holding it; its 15-minute lease ran out
        with write_transaction(factory) as session:
            recording.recover_expired_leases(session, now=at)
        at += minutes(1)
    r = row(factory, wid)
    assert (r.status, r.attempts, r.max_attempts) == (Status.ERROR, 3, 3)
    assert [(a.outcome, a.counted) for a in history(factory, wid)] == [
        ("interrupted", False),
        ("interrupted", True),
        ("interrupted", True),
        ("interrupted", True),
    ]
    assert "second time in a row" in (r.last_error or "")
    with write_transaction(factory) as session:
        assert operator_actions.manual_retry(session, [wid], actor="advisor").retried


def test_a_result_in_between_makes_the_next_interruption_free_again(factory: Factory) -> None:
    (wid,) = enqueue(factory, item())
    run(factory, T0)
    with write_transaction(factory) as session:
        recording.recover_expired_leases(session, now=T0 + minutes(20))
    run(factory, T0 + minutes(21))
    from tests.helpers.builders import fail

    fail(factory, wid, T0 + minutes(22))
    run(factory, T0 + minutes(30))
    with write_transaction(factory) as session:
        recording.recover_expired_leases(session, now=T0 + minutes(50))
    r = row(factory, wid)
    assert (r.status, r.attempts) == (Status.ERROR, 1)
    assert [a.counted for a in history(factory, wid)] == [False, True, False]


@pytest.mark.slow
def test_a_row_that_crashes_every_dispatcher_uses_its_attempts_and_the_rest_go_out(
    tmp_path: Path, db_url: str, factory: Factory, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(constituents=people(6))
    # Its Save never succeeds (nobody has that constituent id), and every dispatcher dies sending it.
    (crasher_id,) = enqueue(
        factory, item(Kind.RESUBSCRIBE, "x@example.org", master_customer_id="000000099999")
    )
    ids = [crasher_id, *enqueue(factory, *(known(k) for k in range(5)))]
    crasher = row(factory, ids[0])
    live: list[subprocess.Popen[str]] = []

    def on_save(event: SaveEvent) -> None:
        if event.text and f"[ref {crasher.ref}]" in event.text:
            for proc in live:
                proc.kill()  # whatever it is about this row, the dispatcher dies sending it

    sim.on_save = on_save
    env = env_for(tmp_path, db_url, sim)
    for _ in range(8):
        proc = dispatch(env, "--lease-seconds", "1", "--concurrency", "1", "--batch-size", "1")
        live.append(proc)
        proc.communicate(timeout=60)
        live.clear()
        time.sleep(1.1)
        if retries_exhausted(row(factory, crasher.id).state):
            break
    sim.on_save = None
    done = subprocess.run([EXE, "dispatch", "--once"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr

    stuck = row(factory, crasher.id)
    assert retries_exhausted(stuck.state)
    assert all(row(factory, wid).status is Status.SENT for wid in ids[1:])
