"""Realistic demo data in bulk: writebacks of every kind and status, attempt histories, mailings."""

from __future__ import annotations

import json
import multiprocessing as mp
import random
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Engine, FetchedValue, Index, Table, func, insert, select

from writeback_console.demo.people import (
    ACCOUNTS,
    BOUNCE_REASONS,
    INTERESTS,
    MAILING_TOPICS,
    UNSUB_REASONS,
    Failure,
    constituent_id,
    failures_for,
    person,
)
from writeback_console.domain import DEFAULT_MAX_ATTEMPTS, REF_ALPHABET, REF_PREFIX, Kind, Status, utcnow
from writeback_console.store.history import suspended_event_triggers
from writeback_console.store.models import (
    Attempt,
    Mailing,
    MailingRecipient,
    Writeback,
    WritebackEvent,
)


@dataclass(frozen=True)
class SeedSummary:
    writebacks: int
    attempts: int
    mailings: int
    recipients: int
    seconds: float


# Shares of the queue by status for the kinds that go out automatically, in percent.
AUTOMATIC_STATUS_WEIGHTS = (
    (Status.SENT, 62),
    (Status.NEW, 12),
    (Status.ERROR, 21),
    (Status.DISCARDED, 1),
    (Status.PROCESSING, 4),
)
#: Statuses whose last attempt failed, with its message kept on the row.
FAILED = (Status.ERROR, Status.DISCARDED)
MAILING_STATUS_WEIGHTS = (
    (Status.SENT, 30),
    (Status.SCHEDULED, 30),
    (Status.NO_REMOTE_RECIPIENTS, 30),
    (Status.ERROR, 6),
    (Status.NEW, 4),
    (Status.CANCELLED, 3),
)
KIND_WEIGHTS = (
    (Kind.UNSUBSCRIBE, 30),
    (Kind.RESUBSCRIBE, 8),
    (Kind.INVALID_EMAIL, 20),
    (Kind.INTERESTS, 17),
    (Kind.MAILING_ACTIVITY, 25),
)
#: Mailings that get real recipient rows; the rest keep only their writeback, which keeps 1,000,000
#: rows within a minute while leaving plenty of mailings to send and schedule.
#: The newest rows, whose whole status history the seed writes (what the list shows first).
HISTORY_ROWS = 50_000
MAILINGS_WITH_RECIPIENTS = 400


def _picker(rng: random.Random, weighted: tuple[tuple[Any, int], ...]) -> Callable[[], Any]:
    # A lookup table of 100 slots: one random() call per draw, far cheaper than random.choices.
    total = sum(w for _, w in weighted)
    table = [v for v, w in weighted for _ in range(round(w * 100 / total))]
    size = len(table)
    rand = rng.random
    return lambda: table[int(rand() * size)]


class _Refs:
    """Unique references without asking the database for each one."""

    def __init__(self, rng: random.Random, taken: set[str]) -> None:
        self.rng = rng
        self.seen = taken

    PAIRS = tuple(a + b for a in REF_ALPHABET for b in REF_ALPHABET)

    def __call__(self) -> str:
        pairs = self.PAIRS
        while True:
            bits = self.rng.getrandbits(50)
            ref = (
                REF_PREFIX
                + pairs[bits & 1023]
                + pairs[(bits >> 10) & 1023]
                + pairs[(bits >> 20) & 1023]
                + pairs[(bits >> 30) & 1023]
                + pairs[(bits >> 40) & 1023]
            )
            if ref not in self.seen:
                self.seen.add(ref)
                return ref


def _randint(rng: random.Random, low: int, high: int) -> int:
    return low + int(rng.random() * (high - low + 1))


def seed(
    engine: Engine,
    rows: int,
    *,
    random_seed: int = 20261127,
    now: datetime | None = None,
    days: int = 120,
    progress: Callable[[int], None] | None = None,
    batch: int = 20_000,
    kind_weights: tuple[tuple[Kind, int], ...] = KIND_WEIGHTS,
    automatic_status_weights: tuple[tuple[Status, int], ...] = AUTOMATIC_STATUS_WEIGHTS,
    mailing_status_weights: tuple[tuple[Status, int], ...] = MAILING_STATUS_WEIGHTS,
) -> SeedSummary:
    """Write ``rows`` writebacks (and their mailings and attempts) in bulk, in one transaction."""
    started = utcnow()
    # Naive UTC inside the generator: formatting aware times costs more than the inserts.
    now = (now or started).astimezone(UTC).replace(tzinfo=None)
    sqlite = engine.dialect.name == "sqlite"

    with _bulk_journal(engine), engine.begin() as conn:
        empty = conn.execute(select(func.count()).select_from(Writeback)).scalar_one() == 0
        taken = frozenset() if empty else frozenset(conn.scalars(select(Writeback.ref)))
        next_id = (conn.execute(select(func.max(Writeback.id))).scalar() or 0) + 1
        next_mailing = (conn.execute(select(func.max(Mailing.id))).scalar() or 0) + 1
        next_attempt = (conn.execute(select(func.max(Attempt.id))).scalar() or 0) + 1
        # Building an index once over sorted data is much faster than keeping it up to date row by row.
        dropped: list[Index] = []
        if empty and engine.dialect.name == "sqlite":
            dropped = [*_table(Writeback).indexes, *_table(Attempt).indexes, *_table(WritebackEvent).indexes]
            for index in dropped:
                index.drop(conn)
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA cache_size = -200000")

        spec = _Spec(
            rows=rows,
            random_seed=random_seed,
            now=now,
            days=days,
            batch=batch,
            sqlite=sqlite,
            next_id=next_id,
            next_mailing=next_mailing,
            next_attempt=next_attempt,
            taken_refs=taken,
            kind_weights=kind_weights,
            automatic_status_weights=automatic_status_weights,
            mailing_status_weights=mailing_status_weights,
        )
        write = _sqlite_writer(conn) if sqlite else _core_writer(conn)
        totals = {"writebacks": 0, "attempts": 0, "mailings": 0, "recipients": 0, "events": 0}
        names = {
            Writeback: "writebacks",
            Attempt: "attempts",
            Mailing: "mailings",
            MailingRecipient: "recipients",
            WritebackEvent: "events",
        }
        # The seed writes each row's history itself, as the database would have recorded it.
        with suspended_event_triggers(conn):
            for out in _batches(spec):
                for model, part in out:
                    write(model, part)
                    totals[names[model]] += len(part)
                if progress:
                    progress(totals["writebacks"])
        for index in dropped:
            index.create(conn)
        if not sqlite:
            advance_sequences(conn, (Mailing, MailingRecipient, Writeback, Attempt))
        if sqlite:
            analyze_sample(conn)
    if progress:
        progress(rows)
    return SeedSummary(
        writebacks=totals["writebacks"],
        attempts=totals["attempts"],
        mailings=totals["mailings"],
        recipients=totals["recipients"],
        seconds=(utcnow() - started).total_seconds(),
    )


Batch = list[tuple[type[Any], list[tuple[Any, ...]]]]


@dataclass(frozen=True)
class _Spec:
    """Everything the generator needs: plain data, so that it can run in another process."""

    rows: int
    random_seed: int
    now: datetime
    days: int
    batch: int
    sqlite: bool
    next_id: int
    next_mailing: int
    next_attempt: int
    taken_refs: frozenset[str]
    kind_weights: tuple[tuple[Kind, int], ...]
    automatic_status_weights: tuple[tuple[Status, int], ...]
    mailing_status_weights: tuple[tuple[Status, int], ...]


#: Below this, a second process costs more than it saves.
PROCESS_THRESHOLD = 50_000


def _batches(spec: _Spec) -> Iterator[Batch]:
    """The generated rows, batch by batch; on SQLite made in a second process while this one inserts.

    Generating a row costs about as much Python time as inserting it, and both hold the GIL, so a
    thread would not help; a forked process runs on the machine's other core.
    """
    if not spec.sqlite or spec.rows < PROCESS_THRESHOLD or "fork" not in mp.get_all_start_methods():
        yield from _generate(spec)
        return
    context = mp.get_context("fork")
    channel: Any = context.Queue(maxsize=3)
    producer = context.Process(target=_produce, args=(spec, channel), name="seed-generator", daemon=True)
    producer.start()
    try:
        while (item := channel.get()) is not None:
            if isinstance(item, str):
                raise RuntimeError(f"generating demo data failed:\n{item}")
            yield item
    finally:
        producer.join(timeout=30)
        if producer.is_alive():
            producer.kill()


def _produce(spec: _Spec, channel: Any) -> None:
    try:
        for out in _generate(spec):
            channel.put(out)
    except BaseException:  # reported to the inserting process, which raises it
        channel.put(traceback.format_exc())
    channel.put(None)


def _generate(spec: _Spec) -> Iterator[Batch]:
    now, rows, sqlite = spec.now, spec.rows, spec.sqlite
    rng = random.Random(spec.random_seed)
    pick_kind = _picker(rng, spec.kind_weights)
    pick_auto = _picker(rng, spec.automatic_status_weights)
    pick_mailing_status = _picker(rng, spec.mailing_status_weights)
    pick_account = _picker(rng, ACCOUNTS)
    span = spec.days * 86400
    refs = _Refs(rng, set(spec.taken_refs))
    next_id, next_mailing, next_attempt = spec.next_id, spec.next_mailing, spec.next_attempt
    first_constituent = 100 + next_id
    # Values are made ready for the driver as they are generated: on SQLite straight to pysqlite
    # as SQLAlchemy would store them (its per-value processing costs more than the insert itself;
    # a test reads seeded rows back through the models), elsewhere through SQLAlchemy Core.
    t: Callable[[datetime], Any] = _sqlite_time if sqlite else _aware
    j: Callable[[Any], Any] = json.dumps if sqlite else _same
    empty_payload = j({})
    unsub_payloads = [j({"reason": r}) for r in UNSUB_REASONS]
    # Opt-ins outnumber opt-outs three to two.
    interest_payloads = [j({"interest": i, "opted_in": k < 3}) for i in INTERESTS for k in range(5)]

    writebacks: list[tuple[Any, ...]] = []
    attempts: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    mailings: list[tuple[Any, ...]] = []
    recipients: list[tuple[Any, ...]] = []

    def batch_out() -> Batch:
        out: Batch = [
            (Mailing, mailings[:]),
            (MailingRecipient, recipients[:]),
            (Writeback, writebacks[:]),
            (Attempt, attempts[:]),
            (WritebackEvent, events[:]),
        ]
        for part in (mailings, recipients, writebacks, attempts, events):
            part.clear()
        return out

    def add_mailing(mid: int, account: str, name: str, sent: datetime) -> None:
        # Column order of the mailing table.
        mailings.append((mid, account, name, name, str(900000 + mid), t(sent), t(sent - timedelta(days=1))))

    def add_recipients(mid: int, sent: datetime, remote: bool, size: tuple[int, int] = (5, 60)) -> int:
        """Adds a mailing's recipients; returns how many are known in Personify360."""
        known = 0
        for r in _recipients(rng, mid, sent, remote, first_constituent, rows, size):
            known += r["master_customer_id"] is not None
            recipients.append(
                (
                    None,
                    mid,
                    r["email"],
                    r["master_customer_id"],
                    r["sub_customer_id"],
                    t(r["sent_at"]),
                    t(r["opened_at"]) if r["opened_at"] else None,
                    j(r["clicks"]),
                    t(r["bounced_at"]) if r["bounced_at"] else None,
                    r["bounce_reason"],
                    r["blocked"],
                )
            )
        return known

    mailings_with_recipients = 0
    rand = rng.random
    for i in range(rows):
        wid = next_id + i
        kind: Kind = pick_kind()
        account: str = pick_account()
        created = now - timedelta(seconds=3600 + span * (1 - i / max(rows, 1)) + rand() * 60)
        occurred = created - timedelta(seconds=5 + int(rand() * 3600))
        status: Status = pick_mailing_status() if kind is Kind.MAILING_ACTIVITY else pick_auto()
        n = first_constituent + int(rand() * (rows * 2 + 10))
        _, _, email = person(n)
        master = constituent_id(n) if rand() < 0.7 else None
        payload: Any = empty_payload
        mailing_id = None
        row_email: str | None = email
        scheduled_for = None
        remote_count = 0
        if kind is Kind.UNSUBSCRIBE:
            payload = unsub_payloads[int(rand() * len(unsub_payloads))]
        elif kind is Kind.INVALID_EMAIL:
            reason = rng.choice(BOUNCE_REASONS).format(email=email, domain=email.rpartition("@")[2])
            payload = j({"reason": reason})
        elif kind is Kind.INTERESTS:
            payload = interest_payloads[int(rand() * len(interest_payloads))]
        elif kind is Kind.MAILING_ACTIVITY:
            mailing_id = next_mailing
            next_mailing += 1
            row_email, master = None, None
            name = f"{rng.choice(MAILING_TOPICS)} – {occurred:%b %d, %Y}"
            payload = j({"mailing_name": name})
            add_mailing(mailing_id, account, name, occurred)
            # Every mailing has recipients; recent ones a realistic number, older ones a handful,
            # which keeps a million rows within a minute.
            recent = (
                rows - i <= MAILINGS_WITH_RECIPIENTS * 4
                and mailings_with_recipients < MAILINGS_WITH_RECIPIENTS
            )
            mailings_with_recipients += recent
            remote = status is not Status.NO_REMOTE_RECIPIENTS
            remote_count = add_recipients(mailing_id, occurred, remote, (5, 60) if recent else (1, 3))
            if status is Status.SCHEDULED:
                scheduled_for = t(now + timedelta(hours=1 + int(rand() * 24 * 14)))
            elif status is Status.CANCELLED:
                scheduled_for = t(occurred + timedelta(days=1 + int(rand() * 5)))
        wb_attempts, history, last = _history(rng, kind, status, created, email, master, remote_count)
        final = len(history)
        # The status history the database would have recorded, told by the same story; rows older than
        # the newest HISTORY_ROWS keep only their status, as rows from before the history began do.
        full_history = rows - i <= HISTORY_ROWS
        queued_as = Status.SCHEDULED if scheduled_for is not None else Status.NEW
        if not full_history:
            at = history[-1][0] if history else created
            events.append((None, wid, None, status.value, t(at), "upgrade", wb_attempts))
        else:
            events.append((None, wid, None, queued_as.value, t(created), "demo import", 0))
        if full_history and status is Status.CANCELLED:
            cancelled_at = t(created + timedelta(minutes=5 + int(rand() * 600)))
            events.append((None, wid, queued_as.value, status.value, cancelled_at, "staff@demo", 0))
        before = queued_as
        for number, (at, failure) in enumerate(history, start=1):
            running = status is Status.PROCESSING and number == final
            # Column order of the attempt table.
            attempts.append(
                (
                    next_attempt,
                    wid,
                    number,
                    t(at),
                    None if running else t(at + timedelta(milliseconds=40 + int(rand() * 30000))),
                    _outcome(status, number, final, failure),
                    True,
                    failure.http_status if failure else (200 if number == final and not running else None),
                    failure.message if failure else None,
                    failure.excerpt if failure else None,
                    DISPATCHERS[int(rand() * len(DISPATCHERS))],
                    False,
                )
            )
            by = attempts[-1][10]
            if not full_history:
                next_attempt += 1
                continue
            events.append((None, wid, before.value, Status.PROCESSING.value, t(at), by, number))
            if not running:
                after = Status.ERROR if number < final or status in FAILED else status
                events.append((None, wid, Status.PROCESSING.value, after.value, attempts[-1][4], by, number))
                before = after
            next_attempt += 1
        if full_history and status is Status.DISCARDED and history:
            # An advisor stopped retrying it a while after its last failure.
            discarded_at = t(history[-1][0] + timedelta(minutes=30 + int(rand() * 600)))
            events.append((None, wid, Status.ERROR.value, status.value, discarded_at, "advisor@demo", final))
        locked = status is Status.PROCESSING
        failed = last is not None and status in FAILED
        locked_at = lease_expires_at = None
        if locked:
            # Half of the Processing rows have been stuck for hours: a dispatcher died.
            since = now - timedelta(hours=2 + int(rand() * 28)) if rand() < 0.5 else now
            locked_at, lease_expires_at = t(since), t(since + timedelta(seconds=900))
        # Column order of the writeback table.
        writebacks.append(
            (
                wid,
                refs(),
                kind.value,
                account,
                row_email,
                master,
                0 if master else None,
                mailing_id,
                payload,
                t(occurred),
                status.value,
                wb_attempts,
                DEFAULT_MAX_ATTEMPTS,
                scheduled_for,
                t(last.at) if last else None,
                "console-2:4242" if locked else None,
                locked_at,
                lease_expires_at,
                1 if locked else 0,
                0,
                Status.NEW.value if locked else None,
                False,
                None,
                t(history[-1][0] + timedelta(seconds=1)) if status is Status.SENT else None,
                last.failure.message if failed and last else None,
                last.failure.http_status if failed and last else None,
                t(created),
                t(history[-1][0]) if history else t(created),
                "demo import",
            )
        )
        if len(writebacks) >= spec.batch:
            yield batch_out()
    yield batch_out()
    # A few mailings sent recently with no mailing activity yet: what staff schedule from the demo.
    for k in range(40):
        mid = next_mailing + k
        sent = now - timedelta(days=_randint(rng, 0, 20), hours=_randint(rng, 0, 23))
        add_mailing(mid, pick_account(), f"{rng.choice(MAILING_TOPICS)} – {sent:%b %d, %Y}", sent)
        add_recipients(mid, sent, k % 5 != 0)
    yield batch_out()


DISPATCHERS = tuple(f"console-{h}:{pid}" for h in (1, 2, 3) for pid in (4242, 17311, 23817, 52210))


@contextmanager
def _bulk_journal(engine: Engine) -> Iterator[None]:
    """On SQLite, write the bulk transaction with a rollback journal instead of the WAL.

    In WAL mode every page of a large transaction is written twice (log, then checkpoint); with a
    rollback journal new pages go straight to the file. WAL comes back afterwards for normal work.
    Left alone when another connection has the file open, since the mode cannot change then.
    """
    if engine.dialect.name != "sqlite":
        yield
        return
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        switched = raw.execute("PRAGMA journal_mode = DELETE").fetchone()[0] == "delete"
    try:
        yield
    finally:
        if switched:
            with engine.connect() as conn:
                raw = conn.connection.dbapi_connection
                assert raw is not None
                raw.execute("PRAGMA journal_mode = WAL")


def advance_sequences(conn: Connection, models: tuple[type[Any], ...]) -> None:
    """On PostgreSQL, after rows were given their ids explicitly: each table's sequence moves past them."""
    for model in models:
        name = _table(model).name
        conn.exec_driver_sql(
            f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
            f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {name}), false)"
        )


def analyze_sample(conn: Connection) -> None:
    """SQLite's statistics after a bulk load, from a sample: enough for the planner, and ANALYZE does not
    read the whole file."""
    conn.exec_driver_sql("PRAGMA analysis_limit = 2000")
    conn.exec_driver_sql("ANALYZE")


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


def stored_columns(model: type[Any]) -> list[str]:
    """The columns a bulk writer gives values, in table order: all but those the server fills itself
    (the database user of an audit entry or an event, on PostgreSQL)."""
    return [c.name for c in _table(model).columns if type(c.server_default) is not FetchedValue]


Writer = Callable[[type[Any], list[tuple[Any, ...]]], None]


def _same(value: Any) -> Any:
    return value


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


def _core_writer(conn: Connection) -> Writer:
    def write(model: type[Any], rows: list[tuple[Any, ...]]) -> None:
        if rows:
            names = stored_columns(model)
            conn.execute(
                insert(model),
                # Rows without an id of their own get one from the sequence.
                [
                    {k: v for k, v in zip(names, row, strict=True) if k != "id" or v is not None}
                    for row in rows
                ],
            )

    return write


def _sqlite_writer(conn: Connection) -> Writer:
    def write(model: type[Any], rows: list[tuple[Any, ...]]) -> None:
        if rows:
            table = _table(model)
            names = stored_columns(model)
            sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
            conn.exec_driver_sql(sql, rows)

    return write


def _sqlite_time(value: datetime) -> str:
    # Naive UTC, as the generator makes them, in SQLAlchemy's SQLite DateTime format.
    return value.isoformat(" ", "microseconds")


@dataclass(frozen=True)
class _Last:
    at: datetime
    failure: Failure


def _history(
    rng: random.Random,
    kind: Kind,
    status: Status,
    created: datetime,
    email: str | None,
    master: str | None,
    recipients: int = 0,
) -> tuple[int, list[tuple[datetime, Failure | None]], _Last | None]:
    """The attempts a row in ``status`` went through: (count, [(started, failure or None)], last failure)."""
    if status in (Status.NEW, Status.SCHEDULED, Status.CANCELLED):
        return 0, [], None
    run = created + timedelta(minutes=1 + int(rng.random() * 10))
    if status is Status.NO_REMOTE_RECIPIENTS:
        return 1, [(run, None)], None
    if status is Status.SENT:
        earlier = 0 if rng.random() < 0.9 else _randint(rng, 1, 2)
    elif status in FAILED:
        earlier = rng.choice((1, 1, 2, 3, 3, 3))
    else:  # processing: this attempt is under way
        earlier = rng.choice((0, 0, 0, 1, 2))
    if earlier == 0:
        return 1, [(run, None)], None
    failures = failures_for(kind, email, master, recipients)
    failure = rng.choice(failures)
    history: list[tuple[datetime, Failure | None]] = []
    for k in range(earlier):
        # The same cause usually persists; now and then a different one shows up.
        cause = failure if rng.random() < 0.8 else rng.choice(failures)
        history.append((run + timedelta(minutes=10 * k), cause))
    last_failure = history[-1][1] if history else None
    last = _Last(history[-1][0], last_failure) if last_failure else None
    if status in FAILED:
        return earlier, history, last
    history.append((run + timedelta(minutes=10 * earlier), None))
    return len(history), history, last


def _outcome(status: Status, number: int, total: int, failure: Failure | None) -> str | None:
    if failure is not None:
        return "error"
    if number < total:
        return "error"
    return {
        Status.SENT: "sent",
        Status.NO_REMOTE_RECIPIENTS: "no_remote_recipients",
        Status.PROCESSING: None,
    }.get(status)


def _recipients(
    rng: random.Random,
    mailing_id: int,
    sent: datetime,
    remote: bool,
    first_constituent: int,
    rows: int,
    size: tuple[int, int] = (5, 60),
) -> Iterator[dict[str, Any]]:
    seen: set[str] = set()
    for k in range(_randint(rng, *size)):
        n = first_constituent + int(rng.random() * (rows * 2 + 10))
        _, _, email = person(n)
        if email in seen:
            continue
        seen.add(email)
        known = remote and (k == 0 or rng.random() < 0.8)
        opened = sent + timedelta(minutes=_randint(rng, 1, 2000)) if rng.random() < 0.45 else None
        clicks = (
            [
                {
                    "url": f"https://www.example.org/news/{_randint(rng, 1, 80)}",
                    "at": (opened + timedelta(minutes=2)).isoformat(),
                }
            ]
            if opened and rng.random() < 0.4
            else []
        )
        bounced = rng.random() < 0.04
        yield {
            "mailing_id": mailing_id,
            "email": email,
            "master_customer_id": constituent_id(n) if known else None,
            "sub_customer_id": 0 if known else None,
            "sent_at": sent,
            "opened_at": None if bounced else opened,
            "clicks": [] if bounced else clicks,
            "bounced_at": sent + timedelta(seconds=30) if bounced else None,
            "bounce_reason": "550 5.1.1 User unknown" if bounced else None,
            "blocked": False,
        }
