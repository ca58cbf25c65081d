"""Retention: old Sent and No Remote Recipients writebacks deleted in short batches, their audit kept.

A writeback is prunable when it is Sent and was sent before the cutoff, or No Remote Recipients and
became so (``updated_at``: final rows are not changed again) before it; every other status stays
(``domain.PRUNABLE_STATUSES`` says why). A mailing-activity row that a delivery points at stays too:
the deliveries are the record that each recipient's activity was written, and without them a later row
for the mailing would write every recipient again. Its attempts and status history go with a pruned
row (``ON DELETE CASCADE``); its audit entries stay, and a ``pruned_writeback`` line says what it was.

Each batch is one short write transaction: the rows are chosen afresh in the order of an index
(``ix_writeback_sent_at``), locked in id order, audited (one ``prune`` entry per batch, as bulk
actions are), given their ``pruned_writeback`` lines, and deleted. The counter triggers of migration
0007 see the deletes like any other change; PostgreSQL's deltas are folded at the end.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from writeback_console.domain import AuditAction, Kind, Status, retention_days_problem
from writeback_console.store import counters
from writeback_console.store.audit_trail import record_audit
from writeback_console.store.engine import read_session, write_transaction
from writeback_console.store.lifecycle import database_now
from writeback_console.store.models import Delivery, PrunedWriteback, Setting, Writeback
from writeback_console.store.rows import CHUNK, W, chunks, rows_changed
from writeback_console.store.switches import ALL_ACCOUNTS, PRUNE_SENT_AFTER_DAYS, get_setting

#: Rows deleted per transaction: a few hundred milliseconds of write lock (see bench/prune.py).
BATCH = 1000
#: At most this many rows are counted for a preview ("more than 1,000,000").
COUNT_CAP = 1_000_000
#: The daily prune deletes at most this many rows per dispatcher run, so no run is held up for long;
#: when more are left, the next run goes on.
DAILY_LIMIT = 20_000

#: When the daily prune last began (bookkeeping, not a setting anyone changes; never audited).
LAST_PRUNE = "retention_last_prune"
#: How often the daily prune runs, across every dispatcher on the queue.
DAILY = timedelta(days=1)

Factory = sessionmaker[Session]
log = logging.getLogger(__name__)


def _kept_by_deliveries() -> Any:
    return exists().where(Delivery.writeback_id == W.id)


def _sent_before(cutoff: datetime) -> Any:
    return and_(W.status == Status.SENT.value, W.sent_at < cutoff, ~_kept_by_deliveries())


def _no_remote_before(cutoff: datetime) -> Any:
    return and_(W.status == Status.NO_REMOTE_RECIPIENTS.value, W.updated_at < cutoff, ~_kept_by_deliveries())


def prunable_condition(cutoff: datetime) -> Any:
    """SQL: the writeback may be pruned with this cutoff."""
    return or_(_sent_before(cutoff), _no_remote_before(cutoff))


def count_prunable(session: Session, cutoff: datetime, *, cap: int = COUNT_CAP) -> dict[Status, int]:
    """How many rows of each prunable status a prune with this cutoff would delete, each up to ``cap + 1``."""
    counts: dict[Status, int] = {}
    for status, condition in (
        (Status.SENT, _sent_before(cutoff)),
        (Status.NO_REMOTE_RECIPIENTS, _no_remote_before(cutoff)),
    ):
        bounded = select(W.id).where(condition).limit(cap + 1).subquery()
        counts[status] = int(session.execute(select(func.count()).select_from(bounded)).scalar_one())
    return counts


@dataclass(frozen=True, slots=True)
class Candidate:
    id: int
    ref: str
    kind: str
    status: str
    mailing_id: int | None
    finished_at: datetime


@dataclass(slots=True)
class Position:
    """Where the next batch starts: past the rows already looked at that stay (mailing activity kept
    for its deliveries), so that they are not read again and again."""

    #: The (sent_at, id) and (created_at, id) of the last Sent and No Remote Recipients rows looked at.
    sent: tuple[datetime, int] | None = None
    no_remote: tuple[datetime, int] | None = None
    sent_done: bool = False


def _next_candidates(session: Session, cutoff: datetime, position: Position, size: int) -> list[Candidate]:
    found: list[Candidate] = []
    if not position.sent_done:
        # Along ix_writeback_sent_at, stopping after ``size``. SQLite's planner would rather take the status
        # index and sort every Sent row for each batch, so there the status is compared in a form no index
        # serves; PostgreSQL chooses the ordered range by itself (and would misjudge that form).
        sqlite = session.get_bind().dialect.name == "sqlite"
        status = W.status.concat("") if sqlite else W.status
        query = select(W.id, W.ref, W.kind, W.status, W.mailing_id, W.sent_at).where(
            status == Status.SENT.value, W.sent_at < cutoff
        )
        if position.sent is not None:
            at, after = position.sent
            query = query.where(or_(W.sent_at > at, and_(W.sent_at == at, W.id > after)))
        rows = session.execute(query.order_by(W.sent_at, W.id).limit(size)).all()
        if len(rows) < size:
            position.sent_done = True
        if rows:
            position.sent = (rows[-1].sent_at, rows[-1].id)
        found = [Candidate(r.id, r.ref, r.kind, r.status, r.mailing_id, r.sent_at) for r in rows]
    if len(found) < size:
        # Along ix_writeback_status_created_at (few rows are No Remote Recipients: one per mailing).
        nrr_query = select(W.id, W.ref, W.kind, W.status, W.mailing_id, W.created_at, W.updated_at).where(
            W.status == Status.NO_REMOTE_RECIPIENTS.value, W.updated_at < cutoff
        )
        if position.no_remote is not None:
            at, after = position.no_remote
            nrr_query = nrr_query.where(or_(W.created_at > at, and_(W.created_at == at, W.id > after)))
        nrr = session.execute(nrr_query.order_by(W.status, W.created_at, W.id).limit(size - len(found))).all()
        if nrr:
            position.no_remote = (nrr[-1].created_at, nrr[-1].id)
        found += [Candidate(r.id, r.ref, r.kind, r.status, r.mailing_id, r.updated_at) for r in nrr]
    return found


@dataclass(frozen=True, slots=True)
class BatchDone:
    deleted: dict[Status, int]
    looked_at: int
    audit_event_id: int | None


def prune_batch(
    session: Session,
    cutoff: datetime,
    position: Position,
    *,
    size: int,
    actor: str,
    now: datetime,
    detail: Mapping[str, Any],
) -> BatchDone:
    """Delete the next ``size`` prunable rows in the caller's (write) transaction, audited."""
    candidates = _next_candidates(session, cutoff, position, size)
    if not candidates:
        return BatchDone({}, 0, None)
    by_id = {c.id: c for c in candidates}
    # Locked in id order, as every writer of the queue locks rows; still prunable once locked (no
    # delivery came to point at it meanwhile).
    still: list[int] = []
    for batch in chunks(sorted(by_id)):
        still += session.scalars(
            select(W.id).where(W.id.in_(batch), prunable_condition(cutoff)).order_by(W.id).with_for_update()
        ).all()
    if not still:
        return BatchDone({}, len(candidates), None)
    deleted: dict[Status, int] = {}
    for wid in still:
        status = Status(by_id[wid].status)
        deleted[status] = deleted.get(status, 0) + 1
    event = record_audit(
        session,
        actor=actor,
        action=AuditAction.PRUNE,
        rows=[],
        row_count=len(still),
        now=now,
        detail={
            **detail,
            "cutoff": cutoff.isoformat(),
            **{s.value: n for s, n in deleted.items()},
        },
    )
    session.execute(
        insert(PrunedWriteback),
        [
            {
                "writeback_id": wid,
                "ref": by_id[wid].ref,
                "kind": by_id[wid].kind,
                "status": by_id[wid].status,
                "mailing_id": by_id[wid].mailing_id,
                "finished_at": by_id[wid].finished_at,
                "audit_event_id": event,
            }
            for wid in still
        ],
    )
    gone = 0
    for batch in chunks(still, CHUNK):
        gone += rows_changed(
            session.execute(
                delete(Writeback).where(W.id.in_(batch)).execution_options(synchronize_session=False)
            )
        )
    assert gone == len(still), f"deleted {gone} of {len(still)} locked rows"
    return BatchDone(deleted, len(candidates), event)


@dataclass(slots=True)
class PruneProgress:
    """What a prune has done so far; passed to ``on_batch`` after each committed batch."""

    deleted: dict[Status, int] = field(default_factory=dict)
    batches: int = 0
    longest_batch_seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


@dataclass(frozen=True, slots=True)
class PruneResult:
    cutoff: datetime
    deleted: dict[Status, int]
    batches: int
    longest_batch_seconds: float
    #: True when ``limit`` stopped it with prunable rows left.
    more_left: bool
    audit_event_ids: list[int]

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


def prune(
    factory: Factory,
    cutoff: datetime,
    *,
    actor: str,
    now: datetime,
    detail: Mapping[str, Any] | None = None,
    batch_size: int = BATCH,
    limit: int | None = None,
    on_batch: Callable[[PruneProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PruneResult:
    """Delete every prunable row older than ``cutoff``, ``batch_size`` per transaction, at most ``limit``.

    A failure or a stop between batches leaves what was done done and the rest for the next prune.
    """
    position = Position()
    progress = PruneProgress()
    events: list[int] = []
    more_left = False
    while True:
        if should_stop is not None and should_stop():
            more_left = True
            break
        size = batch_size if limit is None else min(batch_size, limit - progress.total)
        if size <= 0:
            with read_session(factory) as session:
                more_left = any(count_prunable(session, cutoff, cap=0).values())
            break
        began = time.perf_counter()
        with write_transaction(factory) as session:
            done = prune_batch(
                session, cutoff, position, size=size, actor=actor, now=now, detail=detail or {}
            )
        progress.longest_batch_seconds = max(progress.longest_batch_seconds, time.perf_counter() - began)
        if done.looked_at == 0:
            break
        progress.batches += 1
        for status, n in done.deleted.items():
            progress.deleted[status] = progress.deleted.get(status, 0) + n
        if done.audit_event_id is not None:
            events.append(done.audit_event_id)
        if on_batch is not None:
            on_batch(progress)
    if progress.total:
        with write_transaction(factory) as session:
            counters.fold(session)
    return PruneResult(
        cutoff, dict(progress.deleted), progress.batches, progress.longest_batch_seconds, more_left, events
    )


# --- what pruned rows were ------------------------------------------------------------------------


def pruned_mailing_ids() -> Any:
    """SQL: mailings whose mailing activity was pruned (automatic scheduling leaves them alone)."""
    return select(PrunedWriteback.mailing_id).where(
        PrunedWriteback.kind == Kind.MAILING_ACTIVITY.value, PrunedWriteback.mailing_id.is_not(None)
    )


# --- the daily prune ---------------------------------------------------------------------------------


def prune_after_days(session: Session) -> int | None:
    """The daily prune's age in days, or None when it is off."""
    days = get_setting(session, PRUNE_SENT_AFTER_DAYS)
    if isinstance(days, bool) or not isinstance(days, int) or retention_days_problem(days):
        return None
    return days


def claim_daily_prune(session: Session, now: datetime, *, by: str) -> bool:
    """Whether this dispatcher is the one to prune now: at most once a ``DAILY`` across all of them.

    The claim is one conditional update of the bookkeeping row, so of two dispatchers asking at once
    only one gets it. It is committed before pruning begins: a crash mid-prune leaves the rest for the
    next day.
    """
    claimed = rows_changed(
        session.execute(
            update(Setting)
            .where(
                Setting.account == ALL_ACCOUNTS,
                Setting.key == LAST_PRUNE,
                Setting.updated_at <= now - DAILY,
            )
            .values(value=now.isoformat(), updated_at=now, updated_by=by)
        )
    )
    if claimed:
        return True
    if session.get(Setting, (ALL_ACCOUNTS, LAST_PRUNE)) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(
                Setting(
                    account=ALL_ACCOUNTS, key=LAST_PRUNE, value=now.isoformat(), updated_at=now, updated_by=by
                )
            )
    except IntegrityError:
        return False  # another dispatcher made the row, and so claimed today's prune, at this moment
    return True


def _due_again(session: Session, now: datetime) -> None:
    """Let the next run go on at once: today's prune stopped at its limit with rows left."""
    session.execute(
        update(Setting)
        .where(Setting.account == ALL_ACCOUNTS, Setting.key == LAST_PRUNE)
        .values(updated_at=now - DAILY)
    )


def daily_prune(
    factory: Factory, *, by: str, limit: int = DAILY_LIMIT, should_stop: Callable[[], bool] | None = None
) -> PruneResult | None:
    """The dispatcher's part: prune with the account-wide setting, once a day, at most ``limit`` rows.

    None when the setting is off or another dispatcher pruned within the day.
    """
    try:
        # Read first: most runs find retention off or done for the day, and take no write lock for it.
        with read_session(factory) as session:
            days = prune_after_days(session)
            if days is None:
                return None
            last = session.get(Setting, (ALL_ACCOUNTS, LAST_PRUNE))
            if last is not None and last.updated_at > database_now(session) - DAILY:
                return None
        with write_transaction(factory) as session:
            now = database_now(session)
            if not claim_daily_prune(session, now, by=by):
                return None
    except DBAPIError as exc:
        log.warning("retention: could not see whether to prune today (%s); the next run asks again", exc)
        return None
    try:
        result = prune(
            factory,
            now - timedelta(days=days),
            actor=by,
            now=now,
            detail={"older_than_days": days, "daily": True},
            limit=limit,
            should_stop=should_stop,
        )
    except DBAPIError as exc:
        # What was deleted stays deleted; the next run goes on (a busy database is no reason to wait a day).
        log.warning("retention: the daily prune stopped (%s); the next run goes on", exc)
        with contextlib.suppress(DBAPIError), write_transaction(factory) as session:
            _due_again(session, now)
        return None
    if result.more_left:
        with contextlib.suppress(DBAPIError), write_transaction(factory) as session:
            _due_again(session, now)
    if result.total:
        log.info("retention: deleted %s writebacks finished before %s", f"{result.total:,}", result.cutoff)
    return result


# --- the space they leave ----------------------------------------------------------------------------

#: Tables a prune shrinks, vacuumed on PostgreSQL.
PRUNED_TABLES = ("writeback", "attempt", "writeback_event", "pruned_writeback", "audit_event")


def vacuum(engine: Engine) -> tuple[int, int] | None:
    """After a prune: SQLite rewrites the file without the free pages and returns its size before and
    after (it holds the write lock meanwhile, so dispatchers wait); PostgreSQL vacuums and analyses the
    tables, which makes the space reusable without locking writers out, and returns None."""
    if engine.dialect.name == "sqlite":
        path = Path(engine.url.database or "")
        before = _file_size(path)
        # Outside any transaction, as VACUUM must be: the driver connection is in autocommit mode.
        raw = engine.raw_connection()
        try:
            driver = raw.driver_connection
            assert driver is not None
            driver.execute("VACUUM")
            driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
        return before, _file_size(path)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in PRUNED_TABLES:
            conn.exec_driver_sql(f"VACUUM (ANALYZE) {table}")
    return None


def _file_size(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return sum(p.stat().st_size for p in (path, wal) if p.exists())
