"""Engines and sessions for the queue database: SQLite (embedded default) or PostgreSQL (shared)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

#: Execution option that makes the next SQLite transaction take the write lock at BEGIN.
IMMEDIATE = "writeback_begin_immediate"

SQLITE_BUSY_TIMEOUT_MS = 30_000


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> Engine:
    """An engine configured for the queue: WAL and busy timeout on SQLite, pooled psycopg on PostgreSQL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        busy_ms = _busy_timeout(parsed.query.get("busy_timeout_ms"))
        parsed = parsed.difference_update_query(["busy_timeout_ms"])
        engine = create_engine(
            parsed,
            echo=echo,
            connect_args={"timeout": busy_ms / 1000, "check_same_thread": False},
        )
        _configure_sqlite(engine, busy_ms)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(
            parsed, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
        )
    raise ValueError(
        f"unsupported database URL scheme {parsed.drivername!r}: use sqlite:///FILE or postgresql://…"
    )


def _busy_timeout(raw: object) -> int:
    """``?busy_timeout_ms=N`` on a SQLite URL: how long a writer waits for another's lock."""
    if raw is None:
        return SQLITE_BUSY_TIMEOUT_MS
    text = raw if isinstance(raw, str) else str(raw)
    if not text.isdigit() or not 0 < int(text) <= 3_600_000:
        raise ValueError(
            f"busy_timeout_ms: must be a whole number of milliseconds from 1 to 3600000, not {text!r}"
        )
    return int(text)


def _configure_sqlite(engine: Engine, busy_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> None:
    # pysqlite opens transactions behind our back and never with BEGIN IMMEDIATE; take over so that
    # claims can hold the write lock from the start (SQLite ignores FOR UPDATE).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def write_transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose transaction takes the write lock at once (SQLite) and commits on success.

    Without it two SQLite writers can both start reading, and the second to write fails with
    "database is locked" instead of waiting its turn.
    """
    with factory() as session:
        session.connection(execution_options={IMMEDIATE: True})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


class QueryStop:
    """Stops, from another thread, the statement a reading session is running: a superseded page or
    count query gives its connection back at once instead of running on to an answer nobody wants.

    SQLite interrupts the statement (``sqlite3.Connection.interrupt``); PostgreSQL gets a cancel
    request for the backend running it. The session's own thread then sees the statement fail, and
    the connection goes back to the pool clean. A stop that comes after the session closed does
    nothing: the connection may already serve someone else.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dbapi: Any = None
        self.stopped = False

    def attach(self, session: Session) -> None:
        with self._lock:
            if self.stopped:
                raise QueryStopped("the query was stopped before it began")
            self._dbapi = session.connection().connection.dbapi_connection

    def detach(self) -> None:
        with self._lock:
            self._dbapi = None

    def stop(self) -> None:
        """Stop the running statement (and any the session would run after it). Blocks only as long as
        the database takes to hear it: call it off the GUI thread for PostgreSQL."""
        with self._lock:
            self.stopped = True
            dbapi, self._dbapi = self._dbapi, None
            if dbapi is None:
                return
            if isinstance(dbapi, sqlite3.Connection):
                dbapi.interrupt()
            else:
                dbapi.cancel()


class QueryStopped(Exception):
    """The reading session's statement was stopped on purpose (a newer query replaced it)."""


@contextmanager
def read_session(factory: sessionmaker[Session], stop: QueryStop | None = None) -> Iterator[Session]:
    """A session for reading; with ``stop``, another thread can stop the statement it runs."""
    with factory() as session:
        if stop is None:
            yield session
            session.rollback()
            return
        stop.attach(session)
        try:
            yield session
        except Exception as exc:
            if stop.stopped:
                raise QueryStopped("the query was stopped: a newer one replaced it") from exc
            raise
        finally:
            stop.detach()
            session.rollback()
