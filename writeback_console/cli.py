"""The `writeback-console` command: everything the GUI does to the queue, scriptable.

Exit codes: 0 done; 1 refused or failed (the message says why); 2 bad input (usage, a bad file).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from writeback_console import __version__
from writeback_console.config import redact_url, resolve_db_url
from writeback_console.domain import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CONCURRENCY,
    DEFAULT_INTERVAL_SECONDS,
    DEFAULT_LEASE_SECONDS,
    DEFAULT_SETTLE_SECONDS,
    AuditAction,
    Kind,
    Status,
    utcnow,
)
from writeback_console.export import write_rows
from writeback_console.intake import InputError, parse_time, validate_writeback
from writeback_console.personify.client import PersonifyClient
from writeback_console.settings import AppSettings
from writeback_console.store import audit_trail, lifecycle, listing, operator_actions
from writeback_console.store.engine import make_engine, make_session_factory, write_transaction
from writeback_console.store.migrate import SchemaOutOfDate, ensure_schema, upgrade
from writeback_console.store.rows import NotFound, QueueError, RetryRefused, WritebackRow, current_actor

EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT = 0, 1, 2
E = TypeVar("E", Status, Kind)

LIST_FIELDS = (
    "id",
    "ref",
    "kind",
    "email",
    "account",
    "status",
    "attempts",
    "max_attempts",
    "last_error",
    "last_http_status",
    "sent_at",
    "scheduled_for",
    "created_at",
    "occurred_at",
    "master_customer_id",
    "sub_customer_id",
    "mailing_id",
)


class CommandError(Exception):
    """Ends a command with a message on stderr and the given exit code."""

    def __init__(self, message: str, code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.code = code


# --- helpers -------------------------------------------------------------------------------------


def _open(args: argparse.Namespace, *, upgrade_schema: bool | None = None) -> sessionmaker[Session]:
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
        raise CommandError(f"cannot open the database {redact_url(url)}: {_first_line(exc)}") from None
    args.engine = engine
    return make_session_factory(engine)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _time_arg(text: str) -> datetime:
    """An ISO-8601 time, or a date (taken as midnight UTC), for --from/--to/--at."""
    value = text.strip()
    if len(value) == 10:
        value += "T00:00:00Z"
    try:
        return parse_time(value, "time")
    except InputError as exc:
        raise argparse.ArgumentTypeError(exc.problem) from None


def _choices(values: Sequence[str] | None, enum: type[E], flag: str) -> frozenset[E]:
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


def _filter(args: argparse.Namespace) -> listing.WritebackFilter:
    stuck_before = None
    if args.stuck is not None:
        stuck_before = utcnow() - timedelta(minutes=args.stuck)
    return listing.WritebackFilter(
        statuses=_choices(args.status, Status, "--status"),
        kinds=_choices(args.kind, Kind, "--kind"),
        accounts=frozenset(args.account or ()),
        created_from=args.created_from,
        created_to=args.created_to,
        text=args.search,
        retried=args.retried,
        stuck_before=stuck_before,
        retry_available=args.retry_available,
        mailing_id=args.mailing,
    )


def _add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filters (all must match)")
    group.add_argument("--status", action="append", metavar="S", help="status; repeat or comma-separate")
    group.add_argument("--kind", action="append", metavar="K", help="kind; repeat or comma-separate")
    group.add_argument("--account", action="append", metavar="NAME", help="Informz account; repeatable")
    group.add_argument("--search", metavar="TEXT", help="start of email, ref or constituent id; mailing name")
    group.add_argument(
        "--from", dest="created_from", type=_time_arg, metavar="WHEN", help="created at or after"
    )
    group.add_argument("--to", dest="created_to", type=_time_arg, metavar="WHEN", help="created before")
    group.add_argument("--retried", action="store_true", help="only rows tried more than once")
    group.add_argument(
        "--stuck",
        type=int,
        metavar="MINUTES",
        help="only Processing rows whose lease ran out at least this many minutes ago (0: at all)",
    )
    group.add_argument("--retry-available", action="store_true", help="only rows a person may retry now")
    group.add_argument("--mailing", type=int, metavar="ID", help="only rows of this mailing")


def _iso(value: datetime | None) -> str:
    return "" if value is None else value.isoformat(timespec="seconds").replace("+00:00", "Z")


def _short(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M")


# --- commands ------------------------------------------------------------------------------------


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    url = resolve_db_url(args.db)
    try:
        engine = make_engine(url)
        upgrade(engine)
    except (SQLAlchemyError, ValueError) as exc:
        raise CommandError(f"cannot upgrade {redact_url(url)}: {_first_line(exc)}") from None
    print(f"database {redact_url(url)} is up to date")
    return EXIT_OK


def cmd_enqueue(args: argparse.Namespace) -> int:
    raw: dict[str, Any] = {"kind": args.kind_name}
    for name in (
        "email",
        "account",
        "reason",
        "master_customer_id",
        "sub_customer_id",
        "occurred_at",
        "interest",
        "mailing_id",
        "scheduled_for",
        "ref",
    ):
        value = getattr(args, name)
        if value is not None:
            raw[name] = value
    if args.opted_in is not None:
        raw["opted_in"] = args.opted_in == "in"
    try:
        item = validate_writeback(raw)
    except InputError as exc:
        raise CommandError(f"--{exc.field.replace('_', '-')}: {exc.problem}", EXIT_BAD_INPUT) from None
    factory = _open(args)
    with write_transaction(factory) as session:
        actor = current_actor()
        row = lifecycle.enqueue(session, item, actor=actor)
        audit_trail.record_audit(
            session, actor=actor, action=AuditAction.ENQUEUE, rows=[(row.id, row.ref)], now=utcnow()
        )
    print(f"queued {row.ref} (id {row.id}, {row.kind.label}, {row.status.label})")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    from writeback_console.importer import FileChanged, ImportRefused, import_file

    path = Path(args.file)
    if not path.is_file():
        raise CommandError(f"{path}: no such file", EXIT_BAD_INPUT)
    factory = _open(args)
    try:
        report = import_file(path, factory, actor=current_actor())
    except ImportRefused as exc:
        print(f"{path}: {exc.total_errors:,} problem(s); nothing was imported", file=sys.stderr)
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    except FileChanged as exc:
        raise CommandError(str(exc)) from None
    kinds = ", ".join(f"{n:,} {k.label}" for k, n in sorted(report.by_kind.items()))
    print(f"imported {report.added:,} writebacks from {path} ({kinds})")
    return EXIT_OK


def _table(rows: Iterable[WritebackRow], out: IO[str]) -> int:
    header = (
        "REF",
        "CREATED",
        "KIND",
        "STATUS",
        "TRIES",
        "EMAIL / MAILING",
        "ACCOUNT",
        "SENT/DUE",
        "LAST ERROR",
    )
    widths = (13, 16, 21, 20, 5, 36, 10, 16, 0)
    out.write("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip() + "\n")
    count = 0
    for r in rows:
        who = r.email or (f"mailing {r.mailing_id}" if r.mailing_id else "")
        due = r.sent_at or r.scheduled_for
        cells = (
            r.ref,
            _short(r.created_at),
            r.kind.label,
            r.status.label,
            f"{r.attempts}/{r.max_attempts}",
            who[:36],
            r.account[:10],
            _short(due),
            (r.last_error or "").replace("\n", " ")[:70],
        )
        out.write("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip() + "\n")
        count += 1
    return count


def _json_row(r: WritebackRow) -> dict[str, Any]:
    data = r.to_json()
    out = {name: data[name] for name in LIST_FIELDS}
    out["payload"] = data["payload"]
    return out


def cmd_list(args: argparse.Namespace) -> int:
    flt = _filter(args)
    factory = _open(args)
    limit = None if args.all else args.limit
    out = sys.stdout
    with factory() as session:
        rows = listing.iter_rows(session, flt, sort=args.sort, descending=not args.ascending, limit=limit)
        if args.format == "json":
            out.write("[")
            for n, row in enumerate(rows):
                out.write(",\n" if n else "\n")
                out.write(json.dumps(_json_row(row), ensure_ascii=False))
            out.write("\n]\n")
        elif args.format == "csv":
            write_rows(rows, out)
        else:
            shown = _table(rows, out)
            if limit is not None and shown == limit:
                print(f"(first {limit} rows; --limit N or --all for more)", file=sys.stderr)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    factory = _open(args)
    with factory() as session:
        try:
            row = listing.get_writeback(session, args.key)
        except NotFound as exc:
            raise CommandError(str(exc)) from None
        attempts = listing.attempts_of(session, row.id)
        audit = audit_trail.audit_of(session, row.id)
    data = row.to_json()
    if args.format == "json":
        data["attempt_history"] = [
            {k: _iso(v) if isinstance(v, datetime) else v for k, v in dataclasses.asdict(a).items()}
            for a in attempts
        ]
        data["audit"] = [
            {"at": _iso(e.at), "actor": e.actor, "action": e.action, "detail": e.detail, "filter": e.filter}
            for e in audit
        ]
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return EXIT_OK
    for name, value in data.items():
        if name != "payload":
            print(f"{name:>20}: {'' if value is None else value}")
    print(f"{'payload':>20}: {json.dumps(data['payload'], ensure_ascii=False)}")
    print("\nattempts:")
    for a in attempts:
        http = f"HTTP {a.http_status}" if a.http_status else "no HTTP answer"
        print(f"  #{a.number} {_iso(a.started_at)} {a.outcome or 'running'} ({http}) {a.message or ''}")
        if a.response_excerpt:
            print(f"      response: {a.response_excerpt[:300]}")
    if audit:
        print("\naudit:")
        for e in audit:
            print(f"  {_iso(e.at)} {e.actor} {e.action} {json.dumps(e.detail) if e.detail else ''}")
    return EXIT_OK


def cmd_retry(args: argparse.Namespace) -> int:
    factory = _open(args)
    flt = _filter(args)
    with write_transaction(factory) as session:
        if args.keys:
            try:
                ids = listing.resolve_ids(session, args.keys)
            except NotFound as exc:
                raise CommandError(str(exc)) from None
            used_filter = None
        elif args.matching:
            flt = listing.WritebackFilter(**{**flt.__dict__, "retry_available": True})
            ids = [r.id for r in listing.iter_rows(session, flt, sort="id", descending=False)]
            used_filter = flt.to_json()
            if not ids:
                raise CommandError("no row matching the filter can be retried now")
        else:
            raise CommandError("name the rows to retry (ids or refs), or use --matching with filters", 2)
        try:
            result = operator_actions.manual_retry(
                session,
                ids,
                actor=current_actor(),
                filter=used_filter,
                skip_ineligible=args.skip_ineligible,
            )
        except RetryRefused as exc:
            raise CommandError(f"{exc}\nnothing was changed (--skip-ineligible retries the others)") from None
    for refusal in result.skipped:
        print(f"skipped {refusal.ref}: {refusal.reason}", file=sys.stderr)
    print(f"{len(result.retried):,} writeback(s) will be retried at the next dispatcher run")
    return EXIT_OK


def cmd_seed(args: argparse.Namespace) -> int:
    from writeback_console.demo.seed import seed

    if args.rows < 1:
        raise CommandError("--rows must be at least 1", EXIT_BAD_INPUT)
    factory = _open(args)
    engine: Engine = args.engine
    del factory

    def progress(done: int) -> None:
        if sys.stderr.isatty():
            print(f"\r{done:,} / {args.rows:,}", end="", file=sys.stderr, flush=True)

    summary = seed(engine, args.rows, random_seed=args.random_seed, progress=progress)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(
        f"seeded {summary.writebacks:,} writebacks, {summary.attempts:,} attempts, "
        f"{summary.mailings:,} mailings, {summary.recipients:,} recipients in {summary.seconds:.1f} s"
    )
    return EXIT_OK


def cmd_summary(args: argparse.Namespace) -> int:
    factory = _open(args)
    with factory() as session:
        counts = listing.count_by_status(session)
    _print_counts(counts)
    return EXIT_OK


def _print_counts(counts: dict[Status, int]) -> None:
    width = max(len(s.label) for s in Status)
    for status, n in counts.items():
        print(f"  {status.label:<{width}}  {n:>10,}")
    print(f"  {'Total':<{width}}  {sum(counts.values()):>10,}")


EXIT_PERSONIFY_UNUSABLE = 3


def _personify_client(args: argparse.Namespace) -> tuple[AppSettings, PersonifyClient]:
    """Settings and a client from the settings file and WRITEBACK_PERSONIFY_* variables."""
    from writeback_console.settings import PasswordStore, SettingsError, load_settings

    try:
        settings = load_settings()
        password = PasswordStore().get(settings.service_root_url, settings.user)
        if password is None:
            raise SettingsError(
                "password: none stored for this user and URL "
                "(set it in Settings, or WRITEBACK_PERSONIFY_PASSWORD for a headless dispatcher)"
            )
        return settings, PersonifyClient(settings.personify(password))
    except SettingsError as exc:
        raise CommandError(f"Personify360 settings: {exc}") from None


def cmd_check_connection(args: argparse.Namespace) -> int:
    from writeback_console.connection import check_connection
    from writeback_console.settings import PasswordStore, SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        raise CommandError(f"Personify360 settings: {exc}") from None
    checks = check_connection(settings, None, PasswordStore())
    marks = {True: "ok", False: "FAILED", None: "not checked"}
    for check in checks:
        print(f"{marks[check.ok]:<12} {check.name}: {check.text}")
    return EXIT_OK if all(c.ok for c in checks) else EXIT_PERSONIFY_UNUSABLE


def cmd_dispatch(args: argparse.Namespace) -> int:
    import signal
    import threading

    from writeback_console.dispatch.cycle import run_cycle
    from writeback_console.dispatch.summary import ProblemKind
    from writeback_console.settings import SettingsError

    factory = _open(args)
    settings, client = _personify_client(args)
    try:
        options = settings.dispatch_options(
            concurrency=args.concurrency,
            lease_seconds=args.lease_seconds,
            batch_size=args.batch_size,
            settle_seconds=args.settle_seconds,
            interval_seconds=args.interval,
        )
    except SettingsError as exc:
        raise CommandError(f"dispatch: {exc}") from None
    interval = args.interval or settings.interval_seconds
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        # Finish what is in flight, put back what was claimed but not sent, then exit.
        print(f"\nstopping ({signal.Signals(signum).name}): finishing requests in flight …", file=sys.stderr)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    mapping = settings.activity_mapping
    code = EXIT_OK
    try:
        while True:
            summary = run_cycle(factory, client, mapping, options, stop=stop)
            print(f"{_iso(summary.finished_at)} {summary.describe()}", flush=True)
            if summary.problem is ProblemKind.DATABASE:
                code = EXIT_REFUSED
            elif summary.problem is not None:
                code = EXIT_PERSONIFY_UNUSABLE
            else:
                code = EXIT_OK
            if args.once or stop.wait(interval):
                break
    finally:
        client.close()
    return code


def cmd_schedule_mailing(args: argparse.Namespace) -> int:
    factory = _open(args)
    with write_transaction(factory) as session:
        row = operator_actions.schedule_mailing_activity(
            session, args.mailing_id, at=args.at, actor=current_actor()
        )
        total, remote = listing.mailing_recipient_counts(session, args.mailing_id)
    when = f"at {_iso(row.scheduled_for)}" if row.scheduled_for else "at the next dispatcher run"
    print(f"queued mailing activity {row.ref} for mailing {args.mailing_id} {when}")
    print(f"  {total:,} recipients, {remote:,} known in Personify360")
    if remote == 0:
        print("  warning: no recipient is known in Personify360; it will end as No Remote Recipients")
    return EXIT_OK


def cmd_gui(args: argparse.Namespace) -> int:
    from writeback_console.ui.composition_root import main as gui_main

    return gui_main(args.db)


def cmd_demo(args: argparse.Namespace) -> int:
    from writeback_console import demo
    from writeback_console.config import data_dir

    folder = demo.prepare(Path(args.folder) if args.folder else data_dir() / "demo", args.rows)
    with folder.database_engine() as engine, make_session_factory(engine)() as session:
        counts = listing.count_by_status(session)
    print("writebacks by status:")
    _print_counts(counts)
    simulator, url = demo.start_simulator(folder)
    try:
        demo.configure(folder, url)
        print(f"Personify360 simulator at {url} (user {demo.DEMO_USER}, password {demo.DEMO_PASSWORD})")
        if args.no_gui:
            print(f"try: writeback-console --db {folder.database} list --status error")
            return EXIT_OK
        from writeback_console.ui.composition_root import main as gui_main

        print("opening the console …", flush=True)
        return gui_main(folder.db_url, settings_path=folder.settings, password_store=folder.password_store())
    finally:
        simulator.terminate()
        simulator.wait(10)


# --- parser --------------------------------------------------------------------------------------

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="writeback-console",
        description="The Informz → Personify360 writeback queue, from the command line.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--db",
        metavar="URL",
        help="database URL or SQLite file (default: $WRITEBACK_DB_URL or the embedded file)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handler)
        return p

    db = command("db", lambda a: EXIT_BAD_INPUT, "database maintenance")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = db_sub.add_parser("upgrade", help="create or upgrade the schema to this version")
    up.set_defaults(handler=cmd_db_upgrade)

    p = command("enqueue", cmd_enqueue, "queue one writeback")
    p.add_argument("kind_name", metavar="KIND", choices=[k.value for k in Kind])
    p.add_argument("--email")
    p.add_argument("--account")
    p.add_argument("--reason")
    p.add_argument("--master-customer-id", dest="master_customer_id")
    p.add_argument("--sub-customer-id", dest="sub_customer_id", type=int)
    p.add_argument("--occurred-at", dest="occurred_at", metavar="WHEN")
    p.add_argument("--interest")
    p.add_argument("--opted", dest="opted_in", choices=("in", "out"))
    p.add_argument("--mailing-id", dest="mailing_id", type=int)
    p.add_argument("--scheduled-for", dest="scheduled_for", metavar="WHEN")
    p.add_argument("--ref")

    p = command("import", cmd_import, "queue every writeback of a JSONL file, or none if any line is bad")
    p.add_argument("file", metavar="FILE.jsonl")

    p = command("list", cmd_list, "list writebacks, newest first")
    _add_filter_arguments(p)
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N rows (default 50)")
    p.add_argument("--all", action="store_true", help="every matching row")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument(
        "--sort",
        default="created_at",
        choices=typing.get_args(listing.SortField),
    )
    p.add_argument("--ascending", action="store_true", help="oldest/smallest first")

    p = command("show", cmd_show, "every field of one writeback, its attempts and audit trail")
    p.add_argument("key", metavar="ID|REF")
    p.add_argument("--format", choices=("text", "json"), default="text")

    p = command("retry", cmd_retry, "grant one more attempt to rows whose automatic retries are used up")
    p.add_argument("keys", nargs="*", metavar="ID|REF")
    p.add_argument("--matching", action="store_true", help="every retryable row matching the filters")
    p.add_argument("--skip-ineligible", action="store_true", help="retry the eligible rows, skip the others")
    _add_filter_arguments(p)

    p = command("seed", cmd_seed, "add realistic demo data in every kind and status")
    p.add_argument("--rows", type=int, default=10_000, metavar="N")
    p.add_argument("--random-seed", type=int, default=20261127, metavar="S")

    command("summary", cmd_summary, "writebacks per status")

    command(
        "check-connection",
        cmd_check_connection,
        "does Personify360 answer, accept the credentials and know the activity codes?",
    )

    p = command("dispatch", cmd_dispatch, "send queued writebacks to Personify360")
    once = p.add_mutually_exclusive_group(required=True)
    once.add_argument("--once", action="store_true", help="run one cycle and exit")
    once.add_argument("--forever", action="store_true", help="run a cycle every --interval seconds")
    p.add_argument(
        "--interval",
        type=int,
        metavar="S",
        help=f"seconds between cycles (default: settings, {DEFAULT_INTERVAL_SECONDS})",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help=f"writebacks sent at once (default {DEFAULT_CONCURRENCY})",
    )
    p.add_argument(
        "--lease-seconds",
        type=int,
        metavar="S",
        help=f"lease on claimed rows (default {DEFAULT_LEASE_SECONDS})",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help=f"rows claimed per statement (default {DEFAULT_BATCH_SIZE})",
    )
    p.add_argument(
        "--settle-seconds",
        type=int,
        metavar="S",
        help=f"wait after a possible write before looking for it (default {DEFAULT_SETTLE_SECONDS})",
    )

    p = command("schedule-mailing", cmd_schedule_mailing, "queue the mailing activity of a mailing")
    p.add_argument("mailing_id", type=int, metavar="MAILING_ID")
    p.add_argument("--at", type=_time_arg, metavar="WHEN", help="ISO-8601 time (default: the next run)")

    command("gui", cmd_gui, "open the desktop console on the configured database (the default)")

    p = command(
        "demo", cmd_demo, "a fresh seeded demo queue and Personify360 simulator, opened in the console"
    )
    p.add_argument(
        "--rows", type=int, default=800_000, metavar="N", help="writebacks to seed (default 800,000)"
    )
    p.add_argument("--folder", metavar="DIR", help="where the demo lives (default: the data folder's demo/)")
    p.add_argument("--no-gui", action="store_true", help="prepare the demo and exit")

    _add_optional_commands(sub)
    return parser


def _add_optional_commands(sub: Any) -> None:
    """Commands that live in their own packages, wired in when present."""
    try:
        from writeback_console.sim import cli as sim_cli
    except ImportError:
        return
    p = sub.add_parser(
        "sim", help="run the Personify360 simulator", description="run the Personify360 simulator"
    )
    sim_cli.add_arguments(p)
    p.set_defaults(handler=sim_cli.run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        args.handler = cmd_gui
    try:
        code: int = args.handler(args)
    except CommandError as exc:
        print(f"writeback-console: {exc}", file=sys.stderr)
        return exc.code
    except QueueError as exc:
        print(f"writeback-console: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except (OperationalError, InterfaceError) as exc:
        # The database went away or stayed locked in the middle of a command (a dropped connection,
        # a long import elsewhere): every command's changes are one transaction, so nothing is half done.
        print(
            f"writeback-console: the database could not be used ({_first_line(exc)}); nothing was changed",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    except BrokenPipeError:
        # `list … | head` closes the pipe early; that is not an error.
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
