"""What the commands share once they run: opening the database, the filter, times and counts in text."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from writeback_console.cli.exits import EXIT_BAD_INPUT, EXIT_REFUSED, CommandError
from writeback_console.config import redact_url, resolve_db_url
from writeback_console.domain import Kind, Status, utcnow
from writeback_console.store import listing
from writeback_console.store.engine import make_engine, make_session_factory
from writeback_console.store.migrate import SchemaOutOfDate, ensure_schema

E = TypeVar("E", Status, Kind)


def open_queue(args: argparse.Namespace, *, upgrade_schema: bool | None = None) -> sessionmaker[Session]:
    url = resolve_db_url(args.db)
    try:
        engine = make_engine(url)
        # The embedded SQLite file belongs to this user and follows the program; a shared PostgreSQL
        # database is upgraded on purpose, with `db upgrade`, by whoever runs the deployment.
        auto = engine.dialect.name == "sqlite" if upgrade_schema is None else upgrade_schema
        ensure_schema(engine, upgrade_if_needed=auto)
    except SchemaOutOfDate as exc:
        raise CommandError(str(exc)) from None
    except (OperationalError, ValueError) as exc:
        raise CommandError(f"cannot open the database {redact_url(url)}: {first_line(exc)}") from None
    args.engine = engine
    factory = make_session_factory(engine)
    action = getattr(args, "changes_as", None)
    if action is not None:
        _refuse_unless_allowed(factory, action)
    return factory


def _refuse_unless_allowed(factory: sessionmaker[Session], action: str) -> None:
    """Refuse a change the connected user's roles forbid, before the command touches the queue."""
    from writeback_console.messages import permission_refusal
    from writeback_console.store.permissions import read_capabilities

    with factory() as session:
        refusal = permission_refusal(read_capabilities(session), action)
    if refusal is not None:
        raise CommandError(refusal, EXIT_REFUSED)


def first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def enum_choices(values: Sequence[str] | None, enum: type[E], flag: str) -> frozenset[E]:
    """Enum members from repeated or comma-separated options; "No Remote Recipients" works as typed."""
    chosen: set[E] = set()
    for value in values or ():
        for part in value.split(","):
            name = part.strip().lower().replace(" ", "_").replace("-", "_")
            if not name:
                continue
            try:
                chosen.add(enum(name))
            except ValueError:
                known = ", ".join(m.value for m in enum)
                raise CommandError(
                    f"{flag}: unknown {flag[2:]} {name!r}; one of {known}", EXIT_BAD_INPUT
                ) from None
    return frozenset(chosen)


def filter_from(args: argparse.Namespace) -> listing.WritebackFilter:
    stuck_before = None
    if args.stuck is not None:
        stuck_before = utcnow() - timedelta(minutes=args.stuck)
    return listing.WritebackFilter(
        statuses=enum_choices(args.status, Status, "--status"),
        kinds=enum_choices(args.kind, Kind, "--kind"),
        accounts=frozenset(args.account or ()),
        created_from=args.created_from,
        created_to=args.created_to,
        text=args.search,
        retried=args.retried,
        stuck_before=stuck_before,
        retry_available=args.retry_available,
        mailing_id=args.mailing,
        error_text=args.error_text,
    )


def iso(value: datetime | None) -> str:
    return "" if value is None else value.isoformat(timespec="seconds").replace("+00:00", "Z")


def short(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M")
