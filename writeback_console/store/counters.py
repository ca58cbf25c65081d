"""The exact number of writebacks in each status (of any kinds and accounts), read in constant time from
what the database keeps.

Triggers on ``writeback`` (migration 0007) change the totals in the transaction of every insert, delete
and change of status, so no path can forget them and they are never out of date. On SQLite they update
``status_count`` itself; on PostgreSQL each statement appends its own ``status_count_delta`` rows (so
writers never queue on one counter row) and ``fold`` adds them into ``status_count`` now and then: the
dispatcher does at the end of each run. A read sums both in one statement, which sees one snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, func, literal_column, select, text, union_all
from sqlalchemy.orm import Session

from writeback_console.domain import Kind, Status
from writeback_console.store.models import StatusCount, StatusCountDelta

#: Only one session folds at a time (PostgreSQL advisory lock key: "wbcounts").
FOLD_LOCK = 0x7762636F756E7473


def totals(
    session: Session, *, kinds: Iterable[Kind] = (), accounts: Iterable[str] = ()
) -> dict[Status, int]:
    """Writebacks per status, every status present, of the given kinds and accounts (all when none are
    given): exact, whatever the size of the queue."""
    parts = []
    for model, n in ((StatusCount, StatusCount.total), (StatusCountDelta, StatusCountDelta.delta)):
        part = select(model.status, n.label("n"))
        wanted_kinds = sorted(k.value for k in kinds)
        wanted_accounts = sorted(accounts)
        if wanted_kinds:
            part = part.where(model.kind.in_(wanted_kinds))
        if wanted_accounts:
            part = part.where(model.account.in_(wanted_accounts))
        parts.append(part)
    both = union_all(*parts).subquery()
    counts = dict.fromkeys(Status, 0)
    query = select(both.c.status, func.sum(both.c.n)).group_by(both.c.status)
    for status, n in session.execute(query):
        counts[Status(status)] = int(n or 0)
    return counts


def pending_deltas(session: Session) -> int:
    """How many changes wait to be folded (always 0 on SQLite)."""
    return int(session.execute(select(func.count()).select_from(StatusCountDelta)).scalar_one())


def fold(session: Session) -> int:
    """Add the waiting deltas into the totals, in the caller's transaction; returns how many were folded.

    Readers see the totals before or after, never half of it. A second session folding at the same
    moment skips (the deltas stay for the next fold), so two dispatchers never wait on each other here.
    """
    if session.get_bind().dialect.name != "postgresql":
        return 0
    if not session.execute(select(func.pg_try_advisory_xact_lock(literal_column(str(FOLD_LOCK))))).scalar():
        return 0
    folded = session.execute(
        text(
            """
            WITH moved AS (DELETE FROM status_count_delta RETURNING status, kind, account, delta),
                 summed AS (
                     SELECT status, kind, account, sum(delta) AS delta, count(*) AS n
                     FROM moved GROUP BY status, kind, account
                 ),
                 applied AS (
                     INSERT INTO status_count (status, kind, account, total)
                     SELECT status, kind, account, delta FROM summed
                     ON CONFLICT (status, kind, account)
                     DO UPDATE SET total = status_count.total + EXCLUDED.total
                 )
            SELECT coalesce(sum(n), 0) FROM summed
            """
        )
    ).scalar_one()
    return int(folded)


def recount(conn: Connection) -> dict[Status, int]:
    """Count every row again and set the totals to it, in the caller's transaction (a full scan).

    For bulk loads that write with the triggers suspended; ``check`` reports if the kept totals and a
    real count ever disagree.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("LOCK TABLE writeback IN SHARE MODE")
    conn.exec_driver_sql("DELETE FROM status_count_delta")
    conn.exec_driver_sql("DELETE FROM status_count")
    conn.exec_driver_sql(
        "INSERT INTO status_count (status, kind, account, total) "
        "SELECT status, kind, account, count(*) FROM writeback GROUP BY status, kind, account"
    )
    with Session(bind=conn) as session:
        return totals(session)
