"""Writing a generated demo into an empty queue fast: rows that share values are grouped in parts
whose shared values go into the SQL once (binding each value costs more than storing it), indexes are
built once at the end, constraints checked once, and a forked process can prepare tables in a scratch
file that the queue copies in one statement each."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from writeback_console.demo import seed
from writeback_console.store import models as m
from writeback_console.store.history import suspended_event_triggers

Row = tuple[Any, ...]


@dataclass
class Part:
    """Rows of one table that share the values of some columns: those are written once, as constants."""

    model: type[Any]
    columns: tuple[str, ...]
    constants: dict[str, Any]
    rows: list[Row] = field(default_factory=list)


def part_of(model: type[Any], columns: str, constants: dict[str, Any], **more: Any) -> Part:
    named = tuple(columns.split())
    return Part(model, named, {k: v for k, v in {**constants, **more}.items() if k not in named})


#: The models by table name, for copying a staged table.
_MODELS: dict[str, type[Any]] = {
    mapper.class_.__tablename__: mapper.class_ for mapper in m.Base.registry.mappers
}


def columns_of(model: type[Any]) -> list[str]:
    return seed.stored_columns(model)


def literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool | int):
        return str(int(value))
    return "'" + str(value).replace("'", "''") + "'"


def _insert(part: Part) -> str:
    """SQLite's INSERT for a part, the shared values as literals (binding costs more than storing)."""
    columns = ", ".join((*part.columns, *part.constants))
    values = ", ".join(("?",) * len(part.columns) + tuple(literal(v) for v in part.constants.values()))
    return f"INSERT INTO {part.model.__tablename__} ({columns}) VALUES ({values})"


def _write(conn: Connection, part: Part) -> None:
    if part.rows and conn.dialect.name == "sqlite":
        conn.exec_driver_sql(_insert(part), part.rows)
    elif part.rows:  # whole rows, for SQLAlchemy Core
        where = [(part.columns.index(c) if c in part.columns else -1, c) for c in columns_of(part.model)]
        rows = [tuple(r[i] if i >= 0 else part.constants.get(c) for i, c in where) for r in part.rows]
        seed._core_writer(conn)(part.model, rows)


def stage(path: Path, parts: list[Part]) -> None:
    """Parts into a scratch SQLite file with the queue's table names, for :func:`write_queue` to copy."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute("BEGIN")
        for model in dict.fromkeys(p.model for p in parts):
            db.execute(f"CREATE TABLE {model.__tablename__} ({', '.join(columns_of(model))})")
        for part in parts:
            db.executemany(_insert(part), part.rows)
        db.execute("COMMIT")
    finally:
        db.close()


#: The tables with CHECK constraints, checked once when all rows are in.
CHECKED = ("writeback", "attempt", "delivery", "audit_event")


def write_queue(engine: Engine, parts: list[Part], staged: Callable[[], Path] | None = None) -> None:
    """The parts into an empty queue in one transaction; on SQLite also the tables of the scratch file
    ``staged`` waits for and gives."""
    sqlite = engine.dialect.name == "sqlite"
    with seed._bulk_journal(engine), engine.connect() as conn:
        raw: Any = conn.connection.dbapi_connection
        if sqlite:  # the rows are made to fit; the constraints are checked once, when all are in
            raw.execute("PRAGMA foreign_keys = OFF")
            raw.execute("PRAGMA ignore_check_constraints = ON")
        try:
            with conn.begin(), suspended_event_triggers(conn):
                if conn.execute(select(func.count()).select_from(m.Writeback)).scalar_one():
                    raise ValueError("the realistic demo is written into an empty queue only")
                big = (m.Writeback, m.Attempt, m.WritebackEvent, m.MailingRecipient)
                dropped = [ix for model in big for ix in seed._table(model).indexes] if sqlite else []
                for index in dropped:  # making an index once is faster than keeping it up to date
                    index.drop(conn)
                for part in parts:
                    _write(conn, part)
                if staged is not None:
                    raw.execute("ATTACH DATABASE ? AS staged", (str(staged()),))
                    for (name,) in raw.execute("SELECT name FROM staged.sqlite_master WHERE type = 'table'"):
                        columns = ", ".join(seed.stored_columns(_MODELS[name]))
                        copy = f"INSERT INTO {name} ({columns}) SELECT {columns} FROM staged.{name}"
                        conn.exec_driver_sql(copy)
                for index in dropped:
                    index.create(conn)
                if sqlite:
                    found = [str(r) for r in conn.exec_driver_sql("PRAGMA foreign_key_check")]
                    for table in CHECKED:
                        found += conn.exec_driver_sql(f"PRAGMA quick_check({table})").scalars().all()
                    if set(found) != {"ok"}:
                        raise RuntimeError(f"the demo's rows break a constraint: {found[:3]}")
                if not sqlite:
                    seed.advance_sequences(
                        conn, (m.Mailing, m.MailingRecipient, m.Writeback, m.AuditEvent, m.DispatcherRun)
                    )
            if sqlite:
                seed.analyze_sample(conn)
                conn.commit()
        finally:
            if sqlite:
                if staged is not None:
                    raw.execute("DETACH DATABASE staged")
                raw.execute("PRAGMA ignore_check_constraints = OFF")
                raw.execute("PRAGMA foreign_keys = ON")


class Fork:
    """A function run in a forked process, told things over a pipe; its result or its error comes back."""

    def __init__(self, job: Callable[..., Any], *args: Any) -> None:
        context = mp.get_context("fork")
        self.channel, theirs = context.Pipe()
        self.process = context.Process(target=_run, args=(job, theirs, *args), daemon=True)
        self.process.start()

    def wait_for(self, tag: str) -> Any:
        try:
            got, value = self.channel.recv()
        except EOFError:
            got, value = "error", "the process ended without a word"
        if got == "error":
            self.process.join(timeout=10)
            raise RuntimeError(f"preparing the demo failed:\n{value}")
        assert got == tag, f"expected {tag}, got {got}"
        return value

    def result(self) -> Any:
        value = self.wait_for("done")
        self.process.join(timeout=10)
        return value


def _run(job: Callable[..., Any], channel: Any, *args: Any) -> None:
    try:
        channel.send(("done", job(channel, *args)))
    except BaseException:  # reported to the parent, which raises it
        channel.send(("error", traceback.format_exc()))
