"""A writeback's status history: the event rows the database writes for every transition.

The events are written by triggers on ``writeback`` (migration 0004) in the transaction of the change;
this module only reads them. ``changed_by`` on the row names who made each change.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from writeback_console.domain import Status
from writeback_console.store import counters
from writeback_console.store.models import WritebackEvent


@dataclass(frozen=True, slots=True)
class EventRow:
    at: datetime
    #: None for the row's first event (it was queued, or found at the upgrade that began the log).
    from_status: Status | None
    to_status: Status
    actor: str | None
    #: The row's attempt count after the change.
    attempt: int
    #: The database user whose change it was (PostgreSQL); None on SQLite and for older events.
    db_user: str | None = None


def events_of(session: Session, writeback_id: int) -> list[EventRow]:
    """Every transition of the writeback, oldest first."""
    query = (
        select(WritebackEvent).where(WritebackEvent.writeback_id == writeback_id).order_by(WritebackEvent.id)
    )
    return [
        EventRow(
            e.at,
            Status(e.from_status) if e.from_status is not None else None,
            Status(e.to_status),
            e.actor,
            e.attempt,
            e.db_user,
        )
        for e in session.scalars(query)
    ]


@contextmanager
def suspended_event_triggers(conn: Connection) -> Iterator[None]:
    """No events are written, and the status totals and the mailing-name search index not kept, for
    changes inside (bulk loads that write the history themselves); at the end both are made afresh.

    On SQLite the triggers are dropped and made again from their own stored definitions; on PostgreSQL
    they are disabled, which needs the table's owner. Only for a connection that is alone on the queue.
    """
    if conn.dialect.name == "sqlite":
        # The mailing-name search index too: made once at the end, it is far quicker than row by row.
        saved = conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master "
            "WHERE type = 'trigger' AND tbl_name IN ('writeback', 'mailing')"
        ).all()
        for name, _sql in saved:
            conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
        try:
            yield
        finally:
            for _name, sql in saved:
                conn.exec_driver_sql(sql)
        conn.exec_driver_sql("INSERT INTO mailing_name_search (mailing_name_search) VALUES ('rebuild')")
    else:
        # USER: the triggers this project made, not those that keep foreign keys.
        conn.exec_driver_sql("ALTER TABLE writeback DISABLE TRIGGER USER")
        try:
            yield
        finally:
            conn.exec_driver_sql("ALTER TABLE writeback ENABLE TRIGGER USER")
    counters.recount(conn)
