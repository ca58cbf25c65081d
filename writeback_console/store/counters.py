"""The exact number of writebacks in each status, read in constant time from what the database keeps.

Triggers on ``writeback`` (migration 0007) change the totals in the transaction of every insert, delete
and change of status, so no path can forget them and they are never out of date. On SQLite they update
``status_count`` itself; on PostgreSQL each statement appends its own ``status_count_delta`` rows (so
writers never queue on one counter row) and ``fold`` adds them into ``status_count`` now and then: the
dispatcher does at the end of each run. A read sums both in one statement, which sees one snapshot.
"""

from __future__ import annotations

from sqlalchemy import Connection, func, insert, literal_column, select, text, union_all
from sqlalchemy.orm import Session

from writeback_console.domain import Status
from writeback_console.store.models import StatusCount, StatusCountDelta

#: Only one session folds at a time (PostgreSQL advisory lock key: "wbcounts").
FOLD_LOCK = 0x7762636F756E7473


def totals(session: Session) -> dict[Status, int]:
    """Writebacks per status, every status present: exact, whatever the size of the queue."""
    both = union_all(
        select(StatusCount.status, StatusCount.total.label("n")),
        select(StatusCountDelta.status, StatusCountDelta.delta.label("n")),
    ).subquery()
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
            WITH moved AS (DELETE FROM status_count_delta RETURNING status, delta),
                 summed AS (SELECT status, sum(delta) AS delta, count(*) AS n FROM moved GROUP BY status),
                 applied AS (
                     INSERT INTO status_count (status, total)
                     SELECT status, delta FROM summed
                     ON CONFLICT (status) DO UPDATE SET total = status_count.total + EXCLUDED.total
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
    counts = dict.fromkeys(Status, 0)
    for status, n in conn.exec_driver_sql("SELECT status, count(*) FROM writeback GROUP BY status"):
        counts[Status(status)] = int(n)
    conn.exec_driver_sql("DELETE FROM status_count")
    conn.execute(
        insert(StatusCount),
        [{"status": status.value, "total": n} for status, n in counts.items()],
    )
    return counts
