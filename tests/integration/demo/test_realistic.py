"""The realistic demo profile: a queue at rest, as a user opening the demo sees it, and a simulator that
answers each seeded failure exactly as the queue says it did."""

from __future__ import annotations

import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers.fixtures import BACKENDS, create_pg_database, drop_pg_database
from writeback_console import demo, operations
from writeback_console.demo import realistic
from writeback_console.dispatch.cycle import run_cycle
from writeback_console.domain import AuditAction, Kind, Status
from writeback_console.personify.client import PersonifyClient
from writeback_console.sim import store as sim_store
from writeback_console.store import audit_log, audit_trail, history, listing
from writeback_console.store.engine import make_engine, make_session_factory
from writeback_console.store.migrate import upgrade
from writeback_console.store.models import Attempt, MailingRecipient, Writeback

#: The kinds of failure the dispatcher records, by the start of their message.
FAILURE_KINDS = {
    "no constituent": re.compile(r"no Personify360 constituent has the email "),
    "shared email": re.compile(r"\d+ Personify360 constituents share the email .* and none is primary: "),
    "unknown customer": re.compile(r"Customer \d{12}-0 does not exist\.$"),
    "mailing": re.compile(
        r"[\d,]+ of [\d,]+ recipients failed \(first: Customer \d{12}-0 does not exist\.\)$"
    ),
    # Interests sent while someone had set the code inactive in Personify360 (active again now).
    "code inactive": re.compile(r"Activity Code 'INFORMZ_IPM' is inactive\.$"),
}


@dataclass(frozen=True)
class Built:
    folder: demo.DemoFolder
    before: datetime
    after: datetime

    def queue(self) -> sqlite3.Connection:
        return sqlite3.connect(self.folder.database)

    def simulator(self) -> sqlite3.Connection:
        return sqlite3.connect(self.folder.simulator_database)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The default demo, as `writeback-console demo` prepares it."""
    before = datetime.now(UTC)
    folder = demo.prepare(tmp_path_factory.mktemp("realistic") / "demo", say=lambda _: None)
    return Built(folder, before, datetime.now(UTC))


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def by_status(built: Built, *, automatic: bool) -> Counter[str]:
    kind = "kind <> 'mailing_activity'" if automatic else "1"
    with built.queue() as db:
        return Counter(
            dict(db.execute(f"SELECT status, count(*) FROM writeback WHERE {kind} GROUP BY status"))
        )


def test_a_queue_at_rest_has_nothing_processing_and_sends_almost_everything(built: Built) -> None:
    everything, automatic = by_status(built, automatic=False), by_status(built, automatic=True)
    assert everything[Status.PROCESSING] == 0
    assert sum(everything.values()) == realistic.DEFAULT_ROWS == demo.DEFAULT_ROWS_BY_PROFILE["realistic"]
    total = sum(automatic.values())
    assert automatic[Status.SENT] / total >= 0.90
    assert 0.005 <= automatic[Status.ERROR] / total <= 0.03


def test_every_error_has_used_its_attempts_ten_minutes_apart(built: Built) -> None:
    with built.queue() as db:
        attempts = db.execute(
            "SELECT attempts, max_attempts FROM writeback WHERE status = 'error'"
        ).fetchall()
        times = db.execute(
            "SELECT a.writeback_id, a.started_at FROM attempt a JOIN writeback w ON w.id = a.writeback_id"
            " WHERE w.status = 'error' ORDER BY a.writeback_id, a.number"
        ).fetchall()
    assert attempts and all(used == allowed == 3 for used, allowed in attempts)
    starts: dict[int, list[datetime]] = {}
    for wid, started in times:
        starts.setdefault(wid, []).append(moment(started))
    gaps = {round((b - a).total_seconds() / 60) for s in starts.values() for a, b in pairwise(s)}
    assert gaps == {10}


def test_the_backlog_is_a_few_hundred_rows_that_arrived_in_the_last_hours(built: Built) -> None:
    with built.queue() as db:
        created = [moment(c) for (c,) in db.execute("SELECT created_at FROM writeback WHERE status = 'new'")]
    assert 100 <= len(created) <= 999
    assert min(created) >= built.before - timedelta(hours=3) and max(created) <= built.after


def test_weekdays_are_busier_than_weekends(built: Built) -> None:
    with built.queue() as db:
        days = Counter(
            date.fromisoformat(day)
            for (day,) in db.execute(
                "SELECT date(created_at, '-5 hours') FROM writeback WHERE kind <> 'mailing_activity'"
            )
        )
    full = [d for d in days if min(days) < d < max(days)]  # the first and the last day are partial
    weekday = [days[d] for d in full if d.weekday() < 5]
    weekend = [days[d] for d in full if d.weekday() >= 5]
    assert statistics.mean(weekday) > 1.5 * statistics.mean(weekend)
    assert len(set(days.values())) > 20, "no fixed count per day"


def test_mailings_reach_hundreds_to_tens_of_thousands_of_recipients(built: Built) -> None:
    with built.queue() as db:
        sizes = [n for (n,) in db.execute("SELECT count(*) FROM mailing_recipient GROUP BY mailing_id")]
        unknown = db.execute(
            "SELECT count(*) FROM mailing_recipient WHERE master_customer_id IS NULL"
        ).fetchone()
    assert len(sizes) >= 20
    assert 500 <= statistics.median(sizes) <= 20_000 and max(sizes) >= 10_000
    assert unknown[0] > 0, "some recipients are not known to Personify360"


def test_each_mailing_is_sent_once(built: Built) -> None:
    with built.queue() as db:
        sent = db.execute("SELECT name, date(sent_at) FROM mailing").fetchall()
        per_mailing = db.execute(
            "SELECT mailing_id, count(*) FROM writeback WHERE kind = 'mailing_activity' GROUP BY 1"
        ).fetchall()
    names = Counter((name.split(" – ")[0], day) for name, day in sent)
    assert max(names.values()) == 1
    assert {n for _, n in per_mailing} == {1}


def test_mailing_activity_is_scheduled_within_a_week_or_done(built: Built) -> None:
    with built.queue() as db:
        rows = db.execute(
            "SELECT status, scheduled_for FROM writeback WHERE kind = 'mailing_activity'"
        ).fetchall()
    statuses = Counter(status for status, _ in rows)
    assert statuses[Status.SENT] > 20 and statuses[Status.NO_REMOTE_RECIPIENTS] == 1
    assert 1 <= statuses[Status.CANCELLED] <= 2 and statuses[Status.ERROR] <= 1
    scheduled = [moment(when) for status, when in rows if status == Status.SCHEDULED]
    assert scheduled and all(built.after < when <= built.before + timedelta(days=7) for when in scheduled)


def test_constituent_ids_are_not_the_digits_of_their_email(built: Built) -> None:
    with built.queue() as db:
        pairs = db.execute(
            "SELECT email, master_customer_id FROM writeback WHERE email IS NOT NULL"
            " AND master_customer_id IS NOT NULL"
        ).fetchall()
    assert pairs
    for email, master in pairs:
        digits = re.sub(r"\D", "", email.partition("@")[0])
        assert not digits or int(digits) != int(master), (email, master)
    assert sum(1 for email, _ in pairs if re.search(r"\d@", email)) < len(pairs) / 8  # namesakes only


def test_some_email_is_shared_by_two_constituents_neither_primary(built: Built) -> None:
    with built.simulator() as sim:
        shared = sim.execute(
            "SELECT FORMATTED_PHONE_ADDRESS, count(*), max(PRIMARY_FLAG) FROM CUS_COMMUNICATION"
            " GROUP BY FORMATTED_PHONE_ADDRESS HAVING count(*) > 1"
        ).fetchall()
        customers = sim.execute("SELECT count(*) FROM CUSTOMER").fetchone()[0]
    assert shared and {(n, flag) for _, n, flag in shared} == {(2, "N")}
    assert 39_000 <= customers <= 40_000


def test_recent_sent_writebacks_are_in_the_constituents_history(built: Built) -> None:
    with built.queue() as db:
        recent = db.execute(
            "SELECT ref, master_customer_id FROM writeback WHERE status = 'sent'"
            " AND kind <> 'mailing_activity' ORDER BY sent_at DESC LIMIT 50"
        ).fetchall()
        delivered = db.execute("SELECT ref FROM delivery WHERE status = 'sent' LIMIT 50").fetchall()
    with built.simulator() as sim:
        for ref, master in recent:
            found = sim.execute(
                "SELECT MASTER_CUSTOMER_ID FROM CUS_ACTIVITY WHERE ACTIVITY_TEXT LIKE ?", (f"%[ref {ref}]",)
            ).fetchall()
            assert found == [(master,)], ref
        assert delivered
        for (ref,) in delivered:
            assert sim.execute(
                "SELECT 1 FROM CUS_ACTIVITY WHERE ACTIVITY_TEXT LIKE ?", (f"%[ref {ref}]",)
            ).fetchone()


@pytest.fixture
def running(built: Built, tmp_path: Path) -> Iterator[tuple[demo.DemoFolder, str]]:
    """A copy of the demo (this test changes it) with its simulator started, as `demo` starts it."""
    shutil.copytree(built.folder.root, tmp_path / "demo")
    folder = demo.DemoFolder(tmp_path / "demo")
    simulator, url = demo.start_simulator(folder)
    try:
        yield folder, url
    finally:
        simulator.terminate()
        simulator.wait(10)


def test_seeded_errors_are_what_the_dispatcher_records_and_the_first_run_sends_the_backlog(
    running: tuple[demo.DemoFolder, str],
) -> None:
    folder, url = running
    settings = demo.configure(folder, url)
    engine = make_engine(folder.db_url)
    factory = make_session_factory(engine)
    with factory() as session:
        errors = session.execute(
            select(Writeback.id, Writeback.last_error, Writeback.last_http_status).where(
                Writeback.status == Status.ERROR.value
            )
        ).all()
        backlog = set(session.scalars(select(Writeback.id).where(Writeback.status == Status.NEW.value)))
        excerpts = dict(
            session.execute(
                select(Attempt.writeback_id, Attempt.response_excerpt).where(Attempt.number == 3)
            ).all()
        )
    sample: dict[str, list[int]] = {}
    for wid, message, _ in errors:
        kind = next(k for k, pattern in FAILURE_KINDS.items() if pattern.match(message or ""))
        sample.setdefault(kind, [])
        if len(sample[kind]) < 20:
            sample[kind].append(wid)
    assert set(sample) == set(FAILURE_KINDS), "every kind of failure is in the demo"
    seeded = {wid: (message, http) for wid, message, http in errors}
    inactive = sample.pop("code inactive")
    retried = [wid for ids in sample.values() for wid in ids]
    operations.retry(factory, retried, actor="test")

    client = PersonifyClient(settings.personify(demo.DEMO_PASSWORD))
    started = time.perf_counter()
    try:
        summary = run_cycle(
            factory, client, settings.activity_mapping, settings.dispatch_options(settle_seconds=0)
        )
    finally:
        client.close()
    seconds = time.perf_counter() - started
    print(f"\nfirst dispatcher run: {seconds:.1f} s, {summary.describe()}")

    with factory() as session:
        after = {
            r.id: r for r in session.scalars(select(Writeback).where(Writeback.id.in_([*retried, *backlog])))
        }
        new_excerpts = dict(
            session.execute(
                select(Attempt.writeback_id, Attempt.response_excerpt).where(
                    Attempt.number == 4, Attempt.writeback_id.in_(retried)
                )
            ).all()
        )
        still_new = session.execute(
            select(func.count()).select_from(Writeback).where(Writeback.status == Status.NEW.value)
        ).scalar_one()
    engine.dispose()
    for wid in retried:
        row = after[wid]
        assert (row.status, row.attempts) == (Status.ERROR.value, 4), wid
        assert (row.last_error, row.last_http_status) == seeded[wid], wid
        assert new_excerpts[wid] == excerpts[wid], wid
    assert still_new == 0
    assert sum(1 for wid in backlog if after[wid].status == Status.SENT.value) >= 0.9 * len(backlog)
    assert seconds <= 20

    # The inactive code: with the code inactive again the Save is refused in the very words seeded;
    # active (as it is now), a retry of them all sends them.
    codes = sim_store.Database(folder.simulator_database)
    results: dict[bool, dict[int, tuple[str | None, int | None, str]]] = {}
    try:
        for active in (False, True):
            codes.set_code_active("INFORMZ_IPM", active)
            operations.retry(factory, inactive, actor="test")
            client = PersonifyClient(settings.personify(demo.DEMO_PASSWORD))
            try:
                run_cycle(
                    factory, client, settings.activity_mapping, settings.dispatch_options(settle_seconds=0)
                )
            finally:
                client.close()
            with factory() as session:
                results[active] = {
                    r.id: (r.last_error, r.last_http_status, r.status)
                    for r in session.scalars(select(Writeback).where(Writeback.id.in_(inactive)))
                }
    finally:
        codes.set_code_active("INFORMZ_IPM", True)
        codes.close()
        engine.dispose()
    assert all(results[False][wid] == (*seeded[wid], Status.ERROR.value) for wid in inactive)
    assert all(results[True][wid][2] == Status.SENT.value for wid in inactive)


def test_rows_is_the_number_of_writebacks(tmp_path: Path) -> None:
    folder = demo.prepare(tmp_path / "small", 2_000, say=lambda _: None)
    with sqlite3.connect(folder.database) as db:
        assert db.execute("SELECT count(*) FROM writeback").fetchone() == (2_000,)
        assert db.execute("SELECT count(*) FROM writeback WHERE status = 'processing'").fetchone() == (0,)


def test_the_same_seed_and_time_give_the_same_demo_with_or_without_a_second_process(
    tmp_path: Path, sqlite_url: str
) -> None:
    now = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)  # two days after the change to daylight saving time
    other = make_engine(f"sqlite:///{tmp_path / 'other.sqlite3'}")
    forked = make_engine(sqlite_url)
    # The forked path runs only in a process with no other thread (this one may have Qt's): a fresh one.
    script = (
        "import sys, threading\n"
        "from datetime import datetime\n"
        "from pathlib import Path\n"
        "from writeback_console.demo import realistic\n"
        "from writeback_console.store.engine import make_engine\n"
        "assert threading.active_count() == 1\n"
        "realistic.seed_realistic(make_engine(sys.argv[1]), Path(sys.argv[2]), 3_000,"
        " now=datetime.fromisoformat(sys.argv[3]))\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, sqlite_url, str(tmp_path / "sim.sqlite3"), now.isoformat()],
        check=True,
        timeout=120,
    )
    realistic.seed_realistic(other, None, 3_000, now=now, schema=lambda: upgrade(other))
    tables = (
        "writeback",
        "attempt",
        "writeback_event",
        "mailing",
        "mailing_recipient",
        "delivery",
        "audit_event",
    )
    dumps = []
    for engine in (forked, other):
        with engine.connect() as conn:
            dumps.append([conn.exec_driver_sql(f"SELECT * FROM {t} ORDER BY id").all() for t in tables])
        engine.dispose()
    assert dumps[0] == dumps[1]
    assert dumps[0][0] and len(dumps[0][0]) == 3_000


def test_the_realistic_profile_works_on_either_database(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        summary, _, _ = realistic.seed_realistic(engine, None, 1_500, now=datetime(2026, 6, 2, 9, tzinfo=UTC))
        with make_session_factory(engine)() as session:
            counts = listing.count_by_status(session)
            recipients = session.execute(select(func.count()).select_from(MailingRecipient)).scalar_one()
            kinds = set(session.scalars(select(Writeback.kind).distinct()))
            first = session.get(Writeback, 1)
    finally:
        engine.dispose()
    assert summary.writebacks == sum(counts.values()) == 1_500 and counts[Status.PROCESSING] == 0
    assert recipients == summary.recipients and kinds == {k.value for k in Kind}
    assert first is not None and first.created_at.tzinfo is not None


def test_the_stress_profile_still_spreads_every_status(tmp_path: Path) -> None:
    folder = demo.prepare(tmp_path / "stress", 5_000, profile="stress", say=lambda _: None)
    with sqlite3.connect(folder.database) as db:
        statuses = {s for (s,) in db.execute("SELECT DISTINCT status FROM writeback")}
        total = db.execute("SELECT count(*) FROM writeback").fetchone()[0]
    assert statuses >= {s.value for s in Status} - {Status.CANCELLED.value}
    assert total == 5_000 and demo.DEFAULT_ROWS_BY_PROFILE["stress"] == demo.DEFAULT_ROWS == 800_000
    assert demo.PROFILES == ("realistic", "stress")


def test_an_unknown_profile_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "kept").mkdir()
    with pytest.raises(ValueError, match="unknown demo profile"):
        demo.prepare(tmp_path / "kept", profile="huge")
    assert (tmp_path / "kept").is_dir()


def test_the_demo_s_charts_show_thirty_counted_days_of_sends_and_failures(built: Built) -> None:
    # Its history's past hours are rolled up as the dispatchers' runs would have done: the dashboard's
    # 30-day view counts every day, and the last 24 hours show sends and failures.
    from writeback_console.store import charts
    from writeback_console.store.engine import make_engine, make_session_factory

    engine = make_engine(built.folder.db_url)
    try:
        with make_session_factory(engine)() as session:
            month = charts.read_charts(session, built.after, "day", charts.local_zone())
            day = charts.read_charts(session, built.after, "hour", charts.local_zone())
    finally:
        engine.dispose()
    assert month.sent_and_failed.uncounted is None
    assert sum(1 for n in month.sent_and_failed.sent if n) >= 25
    assert sum(day.sent_and_failed.sent) > 0 and sum(day.sent_and_failed.failed) > 0


# --- yesterday's bulk retry --------------------------------------------------------------------------

#: The message of an Interests writeback sent while the code was inactive, and its reason on Top errors.
INACTIVE, INACTIVE_REASON = "Activity Code 'INFORMZ_IPM' is inactive.", "Activity Code … is inactive."
#: A Thursday afternoon: the last run was at 12:00 Eastern, the retry on Wednesday morning, and the code
#: was inactive on Monday morning.
RETRY_DEMO_NOW = datetime(2026, 12, 10, 19, 0, tzinfo=UTC)


@dataclass(frozen=True)
class RetryDemo:
    factory: sessionmaker[Session]
    simulator: Path
    now: datetime


@pytest.fixture(scope="module", params=BACKENDS)
def retry_demo(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RetryDemo]:
    """A demo of 6,000 writebacks at a fixed time, on SQLite and on PostgreSQL (read only by the tests)."""
    folder = tmp_path_factory.mktemp("retry-demo")
    sqlite = request.param == "sqlite"
    url = f"sqlite:///{folder / 'queue.sqlite3'}" if sqlite else create_pg_database("wbdemo")
    engine = make_engine(url)
    try:
        simulator = folder / "simulator.sqlite3"
        realistic.seed_realistic(engine, simulator, 6_000, now=RETRY_DEMO_NOW, schema=lambda: upgrade(engine))
        yield RetryDemo(make_session_factory(engine), simulator, RETRY_DEMO_NOW)
    finally:
        engine.dispose()
        if not sqlite:
            drop_pg_database(url)


def retry_entries(session: Session, now: datetime) -> list[audit_log.AuditEntry]:
    """The retries of the last two days, as the Audit log page and `audit --since 2d --action retry` ask."""
    flt = audit_log.AuditFilter(actions=frozenset({AuditAction.RETRY}), since=now - timedelta(days=2))
    return audit_log.audit_page(session, flt).entries


def code_inactive_rows(session: Session) -> Mapping[int, Writeback]:
    """Every Interests writeback whose first attempt was refused because the code was inactive."""
    query = (
        select(Writeback)
        .join(Attempt, Attempt.writeback_id == Writeback.id)
        .where(Writeback.kind == Kind.INTERESTS.value, Attempt.number == 1, Attempt.message == INACTIVE)
    )
    return {row.id: row for row in session.scalars(query)}


def test_yesterday_an_advisor_retried_all_matching_code_inactive_interests_of_the_busiest_account(
    retry_demo: RetryDemo,
) -> None:
    with retry_demo.factory() as session:
        [entry] = retry_entries(session, retry_demo.now)
        linked = audit_log.event_rows(session, entry.id, limit=1_000)
        failed = {wid: row.account for wid, row in code_inactive_rows(session).items()}
        last_run = session.execute(select(func.max(Attempt.started_at))).scalar_one()
    per_account = Counter(failed.values())
    busiest = per_account.most_common(1)[0][0]
    assert len(per_account) >= 2 and per_account[busiest] > max(
        n for a, n in per_account.items() if a != busiest
    )
    assert entry.actor == realistic.ADVISOR
    assert entry.filter == {
        "statuses": ["error"],
        "kinds": ["interests"],
        "accounts": [busiest],
        "error_text": INACTIVE_REASON,
        "matching": True,
    }
    assert audit_trail.filter_words(entry.filter) == (
        f'all matching: status=error, kind=interests, account={busiest}, error contains "{INACTIVE_REASON}"'
    )
    assert entry.detail == {"granted_attempts": 1}
    # Every row it retried is linked, and only those: one account's code-inactive Interests rows.
    assert linked.next_after is None and all(r.in_queue for r in linked.rows)
    assert [r.writeback_id for r in linked.rows] == sorted(w for w, a in failed.items() if a == busiest)
    assert entry.row_count == len(linked.rows) == per_account[busiest]
    # At about 10:20 Eastern on the day before the dispatcher's last run.
    retried, last = realistic.eastern(entry.at.timestamp()), realistic.eastern(last_run.timestamp())
    assert retried.date() == last.date() - timedelta(days=1) and (retried.hour, retried.minute) == (10, 20)


def test_the_rows_retried_yesterday_were_sent_by_the_next_run_in_a_fourth_attempt(
    retry_demo: RetryDemo,
) -> None:
    with retry_demo.factory() as session:
        [entry] = retry_entries(session, retry_demo.now)
        ids = [r.writeback_id for r in audit_log.event_rows(session, entry.id, limit=1_000).rows]
        rows = {wid: session.get(Writeback, wid) for wid in ids}
        tries = {
            wid: session.scalars(
                select(Attempt).where(Attempt.writeback_id == wid).order_by(Attempt.number)
            ).all()
            for wid in ids
        }
        events = {wid: history.events_of(session, wid) for wid in ids}
        trails = {wid: audit_trail.audit_of(session, wid) for wid in ids}
    with sqlite3.connect(retry_demo.simulator) as sim:
        activities = {
            wid: sim.execute(
                "SELECT MASTER_CUSTOMER_ID, ACTIVITY_CODE FROM CUS_ACTIVITY WHERE ACTIVITY_TEXT LIKE ?",
                (f"%[ref {row.ref}]" if row else "",),
            ).fetchall()
            for wid, row in rows.items()
        }
    assert ids
    for wid in ids:
        row, fourth = rows[wid], tries[wid][-1]
        assert row is not None
        assert (row.status, row.attempts, row.max_attempts) == (Status.SENT.value, 4, 4), wid
        assert (row.last_error, row.last_http_status, row.next_attempt_at, row.locked_by) == (
            None,
            200,
            None,
            None,
        )
        assert row.sent_at == row.updated_at == fourth.finished_at and row.changed_by == fourth.dispatcher
        assert [(a.number, a.outcome, a.message, a.manual) for a in tries[wid]] == [
            *((n, "error", INACTIVE, False) for n in (1, 2, 3)),
            (4, "sent", "saved", True),
        ]
        # The fourth attempt came after the retry, in the dispatcher's next run.
        assert entry.at < fourth.started_at < entry.at + timedelta(seconds=realistic.INTERVAL + 30)
        chain = [(e.from_status, e.to_status, e.attempt) for e in events[wid]]
        new, processing, error, sent = Status.NEW, Status.PROCESSING, Status.ERROR, Status.SENT
        assert chain == [
            (None, new, 0),
            (new, processing, 1),
            (processing, error, 1),
            (error, processing, 2),
            (processing, error, 2),
            (error, processing, 3),
            (processing, error, 3),
            (error, new, 3),
            (new, processing, 4),
            (processing, sent, 4),
        ]
        assert [e.at for e in events[wid]] == sorted(e.at for e in events[wid])
        by_person, claim, outcome = events[wid][-3:]
        assert (by_person.at, by_person.actor) == (entry.at, realistic.ADVISOR)
        assert (claim.at, outcome.at) == (fourth.started_at, fourth.finished_at)
        assert claim.actor == outcome.actor == fourth.dispatcher
        # Its timeline shows the retry in the words of any bulk retry.
        assert [audit_trail.entry_words(t) for t in trails[wid]] == [
            f"retry ({len(ids)} rows) {audit_trail.filter_words(entry.filter)}; granted_attempts=1"
        ]
        # Personify360 has its activity, on the constituent the row names.
        assert activities[wid] == [(row.master_customer_id, "INFORMZ_IPM")], row.ref


def test_the_other_accounts_code_inactive_rows_are_still_error_and_may_be_retried(
    retry_demo: RetryDemo,
) -> None:
    with retry_demo.factory() as session:
        [entry] = retry_entries(session, retry_demo.now)
        assert entry.filter is not None
        left = {
            wid: row
            for wid, row in code_inactive_rows(session).items()
            if row.account not in entry.filter["accounts"]
        }
    assert left
    assert {(r.status, r.attempts, r.max_attempts, r.last_error) for r in left.values()} == {
        (Status.ERROR.value, 3, 3, INACTIVE)
    }
    # The user's own retry of the reason finds exactly them.
    flt = listing.WritebackFilter(
        statuses=frozenset({Status.ERROR}), kinds=frozenset({Kind.INTERESTS}), error_text=INACTIVE_REASON
    )
    preview = operations.preview_matching(retry_demo.factory, flt, "retry", sample=1_000)
    assert preview.count == len(left) and {r.id for r in preview.sample} == set(left)


def test_the_demo_a_user_opens_shows_yesterdays_bulk_retry_with_its_rows(built: Built) -> None:
    engine = make_engine(built.folder.db_url)
    try:
        with make_session_factory(engine)() as session:
            [entry] = retry_entries(session, built.after)
            linked = audit_log.event_rows(session, entry.id, limit=1_000).rows
            statuses = set(
                session.scalars(
                    select(Writeback.status).where(Writeback.id.in_([r.writeback_id for r in linked]))
                )
            )
    finally:
        engine.dispose()
    assert entry.actor == realistic.ADVISOR and entry.row_count == len(linked) > 0
    assert statuses == {Status.SENT.value}


def test_the_demo_batches_a_retry_of_all_matching_rows_as_the_console_does() -> None:
    assert realistic.RETRY_BATCH == operations.MATCHING_BATCH
